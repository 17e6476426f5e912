package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/meds"
)

func init() {
	register(&command{name: "tpce", summary: "a small TPCE client of the MEDS relay: commands, events, load", run: runTPCE})
}

const tpceUsage = `Usage: hellopics tpce [flags] [command text...]

Sends each argument as a MEDS command (ids from 1) to the relay's commands
port and prints the answers; with no argument, sends each line read from
standard input. With -events or -status it also prints the events or
status blocks, until interrupted when -follow is set. With -load it
generates load instead and prints the rate and latencies.

  hellopics tpce -commands 127.0.0.1:7001 "show version"
  hellopics tpce -events 127.0.0.1:7002 -follow
  hellopics tpce -commands 127.0.0.1:7001 -load -clients 16 -size 64 -duration 10s

Flags:
`

func runTPCE(args []string) int {
	fs := flag.NewFlagSet("tpce", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tpceUsage)
		fs.PrintDefaults()
	}
	var (
		lf                       cli.LogFlags
		commands, events, status string
		follow, load, check      bool
		clients, size, window    int
		count                    int
		duration, timeout        time.Duration
	)
	lf.Register(fs)
	fs.StringVar(&commands, "commands", "", "the relay's commands port, host:port")
	fs.StringVar(&events, "events", "", "the relay's events port, host:port (print events)")
	fs.StringVar(&status, "status", "", "the relay's status port, host:port (print status blocks)")
	fs.BoolVar(&follow, "follow", false, "keep printing events and status blocks until interrupted")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up waiting for the answers after this long")
	fs.BoolVar(&load, "load", false, "generate command load on -commands")
	fs.IntVar(&clients, "clients", 1, "load: concurrent connections")
	fs.IntVar(&window, "window", 1, "load: commands in flight per connection")
	fs.IntVar(&size, "size", 64, "load: command text size, octets")
	fs.IntVar(&count, "count", 0, "load: commands to send in all (0: run for -duration)")
	fs.DurationVar(&duration, "duration", 10*time.Second, "load: run time")
	fs.BoolVar(&check, "check", true, "load: check that each response echoes its command")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(fs.Output(), "hellopics tpce: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	if commands == "" && events == "" && status == "" {
		return usage("give at least one of -commands, -events, -status")
	}
	if load && commands == "" {
		return usage("-load needs -commands")
	}
	log, err := lf.Logger("tpce", nil)
	if err != nil {
		return usage("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if load {
		res, err := tpce.RunLoad(ctx, tpce.LoadConfig{Addr: commands, Clients: clients, Window: window, Size: size,
			Count: count, Duration: duration, Check: check})
		fmt.Printf("%d commands answered in %v: %.0f/s, p50 %v, p99 %v, %d relay errors\n",
			res.Commands, res.Elapsed.Round(time.Millisecond), res.Rate(), res.Percentile(0.5), res.Percentile(0.99), res.RelayErrors)
		if err != nil {
			log.Error("load failed", "error", err)
			return 1
		}
		return 0
	}

	var wg sync.WaitGroup
	var out sync.Mutex
	show := func(m meds.Message) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf("%s id=%d len=%d: %s\n", m.Type, m.ID, len(m.Text), strconv.Quote(string(m.Text)))
	}
	for _, addr := range []string{events, status} {
		if addr == "" {
			continue
		}
		c, err := tpce.Dial(ctx, addr, 0)
		if err != nil {
			log.Error("connect failed", "peer", addr, "error", err)
			return 1
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := c.Recv()
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, io.EOF) {
						log.Debug("stream ended", "peer", addr, "error", err)
					}
					return
				}
				show(m)
			}
		}()
	}
	code := 0
	if commands != "" {
		code = sendCommands(ctx, log.Named("commands"), commands, fs.Args(), timeout, show)
	}
	if follow || commands == "" {
		<-ctx.Done()
	}
	stop()
	return code
}

// sendCommands sends the texts (or stdin lines) and prints the answers.
func sendCommands(ctx context.Context, log interface{ Error(string, ...any) }, addr string, texts []string, timeout time.Duration, show func(meds.Message)) int {
	c, err := tpce.Dial(ctx, addr, 0)
	if err != nil {
		log.Error("connect failed", "peer", addr, "error", err)
		return 1
	}
	defer c.Close()
	// Answers are printed as they arrive, while commands are still being
	// read from the arguments or from standard input.
	var sent, got atomic.Int64
	inputDone := make(chan struct{})
	recvDone := make(chan int, 1)
	go func() {
		code := 0
		for {
			if got.Load() >= sent.Load() {
				select {
				case <-inputDone:
					if got.Load() >= sent.Load() {
						recvDone <- code
						return
					}
				default:
				}
			}
			m, err := c.Recv()
			if err != nil {
				select {
				case <-inputDone:
					if got.Load() >= sent.Load() {
						recvDone <- code
						return
					}
				default:
				}
				log.Error("answers missing", "peer", addr, "answered", got.Load(), "sent", sent.Load(), "error", err)
				recvDone <- 1
				return
			}
			got.Add(1)
			if m.Type == meds.TypeRelayError {
				code = 1
			}
			show(m)
		}
	}()
	send := func(text string) bool {
		id := sent.Add(1)
		if err := c.Command(uint32(id), []byte(text)); err != nil {
			log.Error("send failed", "peer", addr, "error", err)
			return false
		}
		return true
	}
	ok := true
	if len(texts) > 0 {
		for _, t := range texts {
			if ok = send(t); !ok {
				break
			}
		}
	} else {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64<<10), meds.DefaultMaxText)
		for ok && sc.Scan() {
			ok = send(sc.Text())
		}
	}
	close(inputDone)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	timer := time.AfterFunc(timeout, func() { _ = c.Close() })
	defer timer.Stop()
	if got.Load() >= sent.Load() {
		_ = c.Close() // wake the receiver blocked in Recv: nothing is owed
	}
	code := <-recvDone
	if !ok {
		code = 1
	}
	return code
}
