// Package data is the data component: it connects to management on a retry
// timer, learns where its control component is, connects to it, reports
// ready and forwards hellos, by driving the pure handshake.Data machine
// from a tier.Loop. It embeds the MEDS relay (package data/relay), which
// keeps relaying whatever management does.
package data
