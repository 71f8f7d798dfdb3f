# Entry points.  `make test` and `make demo` set up their runtimes themselves.
.PHONY: test venvs demo bench clean

test:
	@scripts/run_tests.sh $(PYTEST_ARGS)

venvs:
	@scripts/setup_venv.sh tf2 >/dev/null
	@scripts/setup_venv.sh tf1 >/dev/null
	@scripts/setup_venv.sh hf >/dev/null

clean:
	rm -rf .venv .pytest_cache

# `make bench`: every benchmark in bench/ plus the peers (PyTorch and
# ONNX Runtime MobileBERT, in their own .venv/bench) in one table, written to
# bench/results/summary.{md,json}.  If the peer packages cannot be installed
# the peer columns say "not installed".  BENCH_ARGS go to bench/run_all.py
# (e.g. BENCH_ARGS=--quick for a plumbing check).
bench:
	@tf2_python="$$(scripts/setup_venv.sh tf2)" || { echo "make bench: could not set up the TF 2.15 runtime" >&2; exit 1; }; \
	bench/setup_peer_venv.sh >/dev/null || echo "make bench: peer packages not installed; their columns will say so" >&2; \
	"$$tf2_python" bench/run_all.py $(BENCH_ARGS)

# The whole pipeline at tiny scale on the TF 2.15 runtime (under 15 minutes on
# 2 CPU cores; DEMO_ARGS=--quick, about 2); outputs under demo_out/.  Extra
# flags: make demo DEMO_ARGS=...
demo:
	@python="$$(scripts/setup_venv.sh tf2)" && TF_CPP_MIN_LOG_LEVEL=2 "$$python" demo.py $(DEMO_ARGS)
