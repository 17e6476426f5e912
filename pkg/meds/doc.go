// Package meds holds the MEDS wire codecs of the hellopics data fast path,
// without any socket: the 12-octet MEDS header and message codec used on
// the TPCE side (TCP), the streaming parser that reads it without
// allocating, the mapping of MEDS messages onto SNMP variable bindings
// (fragments), and a pure Reassembler that joins fragments back into
// messages with time passed in by the caller.
//
// The wire contract is /work/shared/spec/meds.md (version 1). Section 1
// is implemented by Header, Message, AppendMessage and Reader; section 2 by
// Fragment, Split, FragmentVarbinds, NotificationVarbinds,
// ExtractFragment, Security and Decoder; reassembly by Reassembler.
package meds
