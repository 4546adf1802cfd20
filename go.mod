module github.com/msdav/msdav

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/gorilla/mux v1.8.1
	golang.org/x/net v0.62.0
)

require (
	github.com/hanwen/go-fuse/v2 v2.12.1 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
