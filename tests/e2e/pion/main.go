// A pion/dtls (v2) peer for the interop tests (tests/e2e/pion_test.ts) and the
// benchmark comparison (tools/bench_compare.ts), built from Debian's
// golang-github-pion-dtls.v2-dev (no module download):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/pion-peer .
//
// As a client (-mode client) it connects with PSK and the -suite list,
// sends -message, prints the reply as one JSON line and closes (close_notify).
// As a server (-mode server) it prints {"port":N} and echoes every datagram.
// As a load generator (-mode load) it runs -clients connections in lock-step
// echo of -size bytes for -duration seconds after -warmup, and prints one
// JSON line with messages/s and latency percentiles: a second load generator,
// in a compiled language with a concurrent GC, to check what our own
// (tools/load.ts) measures.
// -suite takes IANA names separated by commas.
//
// With -ca the client runs on certificates instead of the PSK: it verifies
// the server's chain against that CA file and its name against -server-name
// (pion checks both in its default verification), and with -cert and -key it
// answers a CertificateRequest with that certificate (client authentication).
// The JSON line then also carries the subject of the server's leaf
// certificate.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/dtls/v2"
)

var suites = map[string]dtls.CipherSuiteID{
	"TLS_PSK_WITH_AES_128_GCM_SHA256":       dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	"TLS_PSK_WITH_AES_128_CCM":              dtls.TLS_PSK_WITH_AES_128_CCM,
	"TLS_PSK_WITH_AES_128_CCM_8":            dtls.TLS_PSK_WITH_AES_128_CCM_8,
	"TLS_PSK_WITH_AES_256_CCM_8":            dtls.TLS_PSK_WITH_AES_256_CCM_8,
	"TLS_PSK_WITH_AES_128_CBC_SHA256":       dtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
	"TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256": dtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
	// Certificate suites (-ca): pion v2 has these ECDHE ones (and the CBC_SHA
	// ones, which are not ours).
	"TLS_ECDHE_ECDSA_WITH_AES_128_CCM":        dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
	"TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8":      dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256":   dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384":   dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	mode := flag.String("mode", "client", "client | server | load | handshakes")
	host := flag.String("host", "127.0.0.1", "server address (client) or address to bind (server)")
	port := flag.Int("port", 0, "UDP port")
	identity := flag.String("identity", "Qt DTLS example client", "PSK identity (client)")
	hint := flag.String("hint", "Qt DTLS example server", "PSK identity hint (server)")
	pskHex := flag.String("psk", "1a2b3c4d5e6f", "PSK, hex")
	suiteList := flag.String("suite", "TLS_PSK_WITH_AES_128_GCM_SHA256", "IANA names of the suites to offer or accept, comma-separated")
	message := flag.String("message", "Message from pion", "what the client sends")
	clients := flag.Int("clients", 50, "concurrent connections (load)")
	size := flag.Int("size", 64, "payload bytes (load)")
	duration := flag.Float64("duration", 4, "measured seconds (load)")
	warmup := flag.Float64("warmup", 1, "seconds before measuring (load)")
	caFile := flag.String("ca", "", "PEM CA file: run the client on certificates, verifying the server's chain")
	serverName := flag.String("server-name", "localhost", "name the server's certificate must carry (with -ca)")
	certFile := flag.String("cert", "", "PEM client certificate, for client authentication (with -ca and -key)")
	keyFile := flag.String("key", "", "PEM key of -cert")
	flag.Parse()

	psk, err := hex.DecodeString(*pskHex)
	if err != nil {
		fail("bad -psk: %v", err)
	}
	var ids []dtls.CipherSuiteID
	for _, name := range strings.Split(*suiteList, ",") {
		id, ok := suites[name]
		if !ok {
			fail("pion has no suite %s", name)
		}
		ids = append(ids, id)
	}
	config := &dtls.Config{
		PSK:                  func([]byte) ([]byte, error) { return psk, nil },
		CipherSuites:         ids,
		ExtendedMasterSecret: dtls.RequireExtendedMasterSecret,
	}
	if *mode == "server" {
		config.PSKIdentityHint = []byte(*hint)
		serve(config, *host, *port)
		return
	}
	// pion sends a client's PSKIdentityHint as its identity.
	config.PSKIdentityHint = []byte(*identity)
	if *caFile != "" {
		if *mode != "client" {
			fail("-ca is for -mode client")
		}
		certificateMode(config, *caFile, *serverName, *certFile, *keyFile)
	} else if *certFile != "" || *keyFile != "" {
		fail("-cert and -key need -ca")
	}
	if *mode == "load" {
		load(config, *host, *port, *clients, *size, *duration, *warmup)
		return
	}
	if *mode == "handshakes" {
		handshakes(config, *host, *port, *clients, *duration, *warmup)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	config.ConnectContextMaker = func() (context.Context, func()) { return ctx, func() {} }
	conn, err := dtls.DialWithContext(ctx, "udp", &net.UDPAddr{IP: net.ParseIP(*host), Port: *port}, config)
	if err != nil {
		fail("handshake: %v", err)
	}
	if _, err := conn.Write([]byte(*message)); err != nil {
		fail("write: %v", err)
	}
	buf := make([]byte, 65536)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		fail("deadline: %v", err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		fail("read: %v", err)
	}
	result := map[string]string{"reply": string(buf[:n])}
	if *caFile != "" {
		if peer := conn.ConnectionState().PeerCertificates; len(peer) > 0 {
			if leaf, err := x509.ParseCertificate(peer[0]); err == nil {
				result["serverSubject"] = leaf.Subject.String()
			}
		}
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
	if err := conn.Close(); err != nil {
		fail("close: %v", err)
	}
}

// certificateMode turns a PSK client configuration into one on certificates:
// no PSK, the server's chain verified against caFile and serverName, and the
// client certificate if there is one.
func certificateMode(config *dtls.Config, caFile, serverName, certFile, keyFile string) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fail("-ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("-ca: no PEM certificate in %s", caFile)
	}
	config.PSK = nil
	config.PSKIdentityHint = nil
	config.RootCAs = roots
	config.ServerName = serverName
	if (certFile == "") != (keyFile == "") {
		fail("-cert and -key go together")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			fail("-cert/-key: %v", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
}

func serve(config *dtls.Config, host string, port int) {
	listener, err := dtls.Listen("udp", &net.UDPAddr{IP: net.ParseIP(host), Port: port}, config)
	if err != nil {
		fail("listen: %v", err)
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

// load runs lock-step echo clients and prints what they measured.
func load(config *dtls.Config, host string, port, clients, size int, duration, warmup float64) {
	start := time.Now()
	from := start.Add(time.Duration(warmup * float64(time.Second)))
	to := from.Add(time.Duration(duration * float64(time.Second)))
	var mu sync.Mutex
	var all []float64
	errors := 0
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			samples, failed := echoLoop(config, host, port, size, from, to)
			mu.Lock()
			all = append(all, samples...)
			if failed {
				errors++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Float64s(all)
	at := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return all[int(q*float64(len(all)-1))]
	}
	out, _ := json.Marshal(map[string]interface{}{
		"clients":        clients,
		"payloadBytes":   size,
		"messagesPerSec": float64(len(all)) / duration,
		"latencyMs": map[string]float64{
			"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999), "max": at(1),
			"samples": float64(len(all)),
		},
		"errorsTotal": errors,
	})
	fmt.Println(string(out))
}

// handshakes runs clients that each complete full handshakes one after the
// other (a fresh socket each, so the cookie exchange too), each ended with
// close_notify, and prints how many completed per second.
func handshakes(config *dtls.Config, host string, port, clients int, duration, warmup float64) {
	start := time.Now()
	from := start.Add(time.Duration(warmup * float64(time.Second)))
	to := from.Add(time.Duration(duration * float64(time.Second)))
	var mu sync.Mutex
	done, errors := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				began := time.Now()
				if began.After(to) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c := *config
				c.ConnectContextMaker = func() (context.Context, func()) { return ctx, func() {} }
				conn, err := dtls.DialWithContext(ctx, "udp", &net.UDPAddr{IP: net.ParseIP(host), Port: port}, &c)
				cancel()
				ended := time.Now()
				mu.Lock()
				if err != nil {
					errors++
				} else if began.After(from) && ended.Before(to) {
					done++
				}
				mu.Unlock()
				if err == nil {
					conn.Close()
				}
			}
		}()
	}
	wg.Wait()
	out, _ := json.Marshal(map[string]interface{}{
		"clients":          clients,
		"handshakesPerSec": float64(done) / duration,
		"errorsTotal":      errors,
	})
	fmt.Println(string(out))
}

// echoLoop is one client: a handshake, then write and wait for the echo until `to`.
func echoLoop(config *dtls.Config, host string, port, size int, from, to time.Time) ([]float64, bool) {
	conn, err := dtls.Dial("udp", &net.UDPAddr{IP: net.ParseIP(host), Port: port}, config)
	if err != nil {
		return nil, true
	}
	defer conn.Close()
	payload := make([]byte, size)
	buf := make([]byte, 65536)
	var samples []float64
	for {
		sent := time.Now()
		if sent.After(to) {
			return samples, false
		}
		if _, err := conn.Write(payload); err != nil {
			return samples, true
		}
		if err := conn.SetReadDeadline(sent.Add(2 * time.Second)); err != nil {
			return samples, true
		}
		if _, err := conn.Read(buf); err != nil {
			return samples, true
		}
		got := time.Now()
		if sent.After(from) && got.Before(to) {
			samples = append(samples, float64(got.Sub(sent).Microseconds())/1000)
		}
	}
}
