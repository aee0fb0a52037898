// A pion/dtls (v2) PSK echo server: the Go peer the benchmarks compare
// against. Every decrypted datagram is written back as it came.
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/pion-echo ./tools/pion
//	/tmp/pion-echo -port 4700
//
// Debian packages: golang-go, golang-github-pion-dtls.v2-dev.
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/pion/dtls/v2"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to bind")
	port := flag.Int("port", 0, "UDP port (0: any)")
	pskHex := flag.String("psk", "1a2b3c4d5e6f", "PSK, hex")
	flag.Parse()
	psk, err := hex.DecodeString(*pskHex)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -psk:", err)
		os.Exit(2)
	}
	config := &dtls.Config{
		PSK:             func([]byte) ([]byte, error) { return psk, nil },
		PSKIdentityHint: []byte("Qt DTLS example server"),
		CipherSuites: []dtls.CipherSuiteID{
			dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
			dtls.TLS_PSK_WITH_AES_128_CCM,
			dtls.TLS_PSK_WITH_AES_128_CCM_8,
			dtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
		},
		ExtendedMasterSecret: dtls.RequestExtendedMasterSecret,
	}
	listener, err := dtls.Listen("udp", &net.UDPAddr{IP: net.ParseIP(*host), Port: *port}, config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("{\"port\":%d}\n", listener.Addr().(*net.UDPAddr).Port)
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		listener.Close()
		os.Exit(0)
	}()
	for {
		conn, err := listener.Accept()
		if err != nil {
			// A failed handshake is reported here; keep accepting.
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 65536)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}(conn)
	}
}
