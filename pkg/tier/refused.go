package tier

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/pkg/handshake"
)

// NewRefused returns the counter hellopics_<component>_refused_total, by
// handshake refusal rule (label reason, handshake.Event.Refused), with
// every rule at 0. A shell adds one for each event whose Refused is set.
func NewRefused(component string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hellopics_" + component + "_refused_total",
		Help: "Component-protocol input refused as bad or hostile, by rule (docs/handshake.md, Hostile input).",
	}, []string{"reason"})
	for _, r := range handshake.RefusalReasons() {
		v.WithLabelValues(r)
	}
	v.WithLabelValues(RefusedCertificate)
	return v
}
