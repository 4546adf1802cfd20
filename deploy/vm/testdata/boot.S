# The BIOS boot program of TestFirmwareBootVM's DVD: an El Torito
# no-emulation image that SeaBIOS loads at 0000:7C00 and runs. It says
# MSDAV-BIOS-BOOT on COM1 and ends qemu through isa-debug-exit (port 0xf4:
# qemu exits with status 1<<1|1 = 3). The test places it past block
# 1,151,999 of the disc, so running at all means the firmware read there.
	.code16
	.text
	.globl _start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %ss
	movw	$0x7c00, %sp
	movw	$message, %si
next:
	lodsb
	testb	%al, %al
	jz	done
	movb	%al, %bl
	movw	$0x3fd, %dx		# line status: wait for an empty transmitter
wait:
	inb	%dx, %al
	testb	$0x20, %al
	jz	wait
	movw	$0x3f8, %dx
	movb	%bl, %al
	outb	%al, %dx
	jmp	next
done:
	movb	$1, %al
	outb	%al, $0xf4
halt:
	hlt
	jmp	halt
message:
	.asciz	"\r\nMSDAV-BIOS-BOOT\r\n"
