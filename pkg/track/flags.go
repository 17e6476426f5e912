package track

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Flags are the command-line flags of tracked checks: -track-script CMD
// and -track-interface IF, both repeatable, each taking the settings
// -track-name, -track-weight, -track-interval, -track-timeout,
// -track-fall and -track-rise given before it on the command line (a
// setting stays in force for the checks after it; -track-name applies
// to the next check only). A setting given after the last check applies
// to none and is a usage error (Checks). Register them on a FlagSet,
// parse, then call Checks.
type Flags struct {
	cur     Check // the settings in force
	checks  []Check
	pending string // a setting given since the last check, "" if none
}

// Register defines the flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.Func("track-script", "tracked health check: a shell command line `CMD` run every -track-interval; exit status 0 passes (repeatable; takes the -track-* settings given before it; docs/ha.md, \"Tracked health\")", func(v string) error {
		return f.add(Check{Script: v})
	})
	fs.Func("track-interface", "tracked health check: a network interface `IF` that must be up with a carrier (repeatable; takes the -track-* settings given before it)", func(v string) error {
		return f.add(Check{Interface: v})
	})
	fs.Func("track-name", "`name` of the next -track-script or -track-interface in status, metrics and logs (default script:CMD or interface:IF)", func(v string) error {
		f.cur.Name, f.pending = v, "-track-name"
		return nil
	})
	fs.Func("track-weight", "for the checks after it: lower the election priority by this `weight` while the check fails; 0 (the default) puts the instance in the fault state instead (never master, -notify-fault runs)", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return errors.New("not a number from 0 to 4294967295")
		}
		f.cur.Weight, f.pending = uint32(n), "-track-weight"
		return nil
	})
	fs.Func("track-interval", fmt.Sprintf("for the checks after it: `duration` between the starts of two runs (default %v)", DefaultInterval), func(v string) error {
		d, err := positive(v)
		f.cur.Interval, f.pending = d, "-track-interval"
		return err
	})
	fs.Func("track-timeout", "for the checks after it: kill a check script's process group after this `duration`; the run fails (default: the interval)", func(v string) error {
		d, err := positive(v)
		f.cur.Timeout, f.pending = d, "-track-timeout"
		return err
	})
	fs.Func("track-fall", fmt.Sprintf("for the checks after it: `count` of consecutive failed runs that make a passing check fail (default %d)", DefaultFall), func(v string) error {
		n, err := count(v)
		f.cur.Fall, f.pending = n, "-track-fall"
		return err
	})
	fs.Func("track-rise", fmt.Sprintf("for the checks after it: `count` of consecutive passed runs that make a failing check pass (default %d)", DefaultRise), func(v string) error {
		n, err := count(v)
		f.cur.Rise, f.pending = n, "-track-rise"
		return err
	})
}

func (f *Flags) add(c Check) error {
	s := f.cur
	s.Script, s.Interface = c.Script, c.Interface
	if err := s.Problem(); err != nil {
		return err
	}
	f.checks = append(f.checks, s)
	f.cur.Name, f.pending = "", ""
	return nil
}

// Checks returns the checks in the order given, or an error when a
// setting follows the last check (it would apply to none).
func (f *Flags) Checks() ([]Check, error) {
	if f.pending != "" {
		return nil, fmt.Errorf("%s is given after the last -track-script or -track-interface: the -track-* settings apply to the checks that follow them", f.pending)
	}
	return f.checks, nil
}

func positive(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("not a positive duration")
	}
	return d, nil
}

func count(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, errors.New("not a number from 1 to 1000")
	}
	return n, nil
}
