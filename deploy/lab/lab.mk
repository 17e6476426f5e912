# The namespace lab (deploy/lab/lab.sh): include from the main Makefile with
#   include deploy/lab/lab.mk
# Needs root and iproute2. LAB_RUN, LAB_PREFIX, LAB_NET and the other
# LAB_* variables of lab.sh pass through the environment.
LAB_SH ?= deploy/lab/lab.sh

.PHONY: lab-up lab-down lab-failover lab-logs lab-status failover-bench lab-chaos

lab-up: build ## start the namespace lab (root): two mgmt, ctrl, data, agent; LAB_ELECTION=etcd: three mgmt on a three-member etcd
	HELLOPICS=$(BIN) $(LAB_SH) up

lab-down: ## stop the namespace lab and remove its namespaces, links, cgroups
	HELLOPICS=$(BIN) $(LAB_SH) down

lab-failover: ## cut the lab's master mgmt off, then kill it
	HELLOPICS=$(BIN) $(LAB_SH) failover

lab-logs: ## the lab's logs, time-ordered, one host prefix a line
	HELLOPICS=$(BIN) $(LAB_SH) logs

lab-status: ## the lab's hosts, processes and ctl status
	HELLOPICS=$(BIN) $(LAB_SH) status

TRIALS ?= 10
failover-bench: build ## fault of the master mgmt -> first hello under the new one, in namespaces (root; TRIALS=10)
	HELLOPICS=$(BIN) deploy/lab/failover-bench.sh $(TRIALS)

DURATION ?= 2m
SEED ?= $(shell date +%s)
lab-chaos: build ## random faults in a namespace lab (root): DURATION=2m SEED=n; summary and invariants
	$(GO) run ./internal/chaos/cmd/chaos -bin $(BIN) -duration $(DURATION) -seed $(SEED)
