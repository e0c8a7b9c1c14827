# fproxy: every target installs what it needs first (Node 24 comes from npm, into node_modules).
NODE := ./node_modules/.bin/node
TSC  := ./node_modules/.bin/tsc

.PHONY: run test typecheck unit rollout-check upgrade-check bench bench-check schema deps

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed
	@bash scripts/ensure-debian.sh openssl python3 chromium

## Run the daemon on the shipped config.json, with local echo targets on 9001-9003.
run: deps
	@bash scripts/run.sh

## Type-check and run every test (what CI runs).
test: deps typecheck unit

typecheck: node_modules/.installed
	$(TSC) --noEmit -p tsconfig.json

unit: deps
	$(NODE) --test --test-concurrency=2 --test-timeout=120000 '**/*.test.ts'

## Zero-downtime check: 50+ config rewrites under load, must report 0 failures.
rollout-check: deps
	bash scripts/rollout-check

## Zero-downtime daemon upgrade: 10 upgrades (fproxy upgrade) under load, must report 0 failures.
upgrade-check: deps
	bash scripts/upgrade-check

## Side-by-side benchmark against HAProxy and nginx stream (installs them from Debian if missing).
bench: deps
	bash scripts/bench

## A short real run of the benchmark, checking its report's shape (loads the machine; not in `make test`).
bench-check: deps
	$(NODE) --test --test-timeout=1200000 scripts/bench-e2e.check.ts

schema: node_modules/.installed
	$(NODE) daemon/config/write-schema.ts
