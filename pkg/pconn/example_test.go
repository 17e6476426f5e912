package pconn_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/hellopics/hellopics/pkg/pconn"
)

// The message types of an application: any of 1..pconn.MaxUserType.
const (
	typeEcho  pconn.MsgType = 1
	typeReply pconn.MsgType = 2
)

// A server answers every frame of type typeEcho with the same payload
// under type typeReply; a client sends one and prints the answer.
func ExampleListen() {
	mux := pconn.NewMux()
	mux.HandleFunc(typeEcho, func(s *pconn.Session, m pconn.Message) error {
		// m.Payload is valid only until the handler returns; Send copies it.
		return s.Send(typeReply, m.Payload)
	})
	srv, err := pconn.Listen("127.0.0.1:0", pconn.DefaultConfig(mux))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	replies := make(chan string, 1)
	cfg := pconn.DefaultConfig(pconn.HandlerFunc(func(_ *pconn.Session, m pconn.Message) error {
		replies <- string(m.Payload) // a copy
		return nil
	}))
	sess, err := pconn.Connect(context.Background(), cfg, srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if err := sess.Send(typeEcho, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-replies)

	// A graceful close: the goodbye goes out, the server closes its side.
	sess.Close()
	<-sess.Done()
	fmt.Println(sess.Err())
	// Output:
	// hello
	// pconn: closed
}

// A client keeps a session to the first of its servers that answers,
// reconnecting by itself; the EventHandler hears when a session is up.
func ExampleDial() {
	srv, err := pconn.Listen("127.0.0.1:0", pconn.DefaultConfig(pconn.HandlerFunc(
		func(s *pconn.Session, m pconn.Message) error { return s.Send(m.Type, m.Payload) })))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	up := make(chan *pconn.Session, 1)
	replies := make(chan string, 1)
	cfg := pconn.DefaultConfig(pconn.HandlerFunc(func(_ *pconn.Session, m pconn.Message) error {
		replies <- string(m.Payload)
		return nil
	}))
	cfg.EventHandler = pconn.EventHandlerFunc(func(ev pconn.Event) {
		if ev.Type == pconn.EventEstablished {
			up <- ev.Session
		}
	})
	cfg.RetryInterval = 100 * time.Millisecond
	cli, err := pconn.Dial(cfg, srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	sess := <-up
	if err := sess.Send(typeEcho, []byte("ping")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-replies)
	// Output:
	// ping
}
