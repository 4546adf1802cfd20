package fetch

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A read that brings data just as the stall timer fires re-arms the timer
// after it ran: its second run must not close the stall signal again (a
// panic there, in the timer's goroutine, took the whole server down).
func TestStallTimerFiresTwice(t *testing.T) {
	tr := &transfer{m: &Manager{o: Options{Stall: time.Millisecond}}}
	tr.setBody(&http.Response{Body: io.NopCloser(strings.NewReader("x"))})
	select {
	case <-tr.stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("the stall timer did not fire")
	}
	tr.resetTimer() // the read's data arrived as the timer fired
	time.Sleep(20 * time.Millisecond)
	tr.close()
}
