# Entry points.  `make test` and `make demo` set up their runtimes themselves.
.PHONY: test test-tf2 test-tf1 venvs demo bench clean

test:
	@scripts/run_tests.sh $(PYTEST_ARGS)

venvs:
	@scripts/setup_venv.sh tf2 >/dev/null
	@scripts/setup_venv.sh tf1 >/dev/null

clean:
	rm -rf .venv .pytest_cache
