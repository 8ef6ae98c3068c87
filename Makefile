# The two commands of the README: `make run` and `make test`. Both install what they need first.
.PHONY: run test

run:
	./scripts/setup.sh run
	.venv/bin/tandem run

test:
	./scripts/setup.sh test
	.venv/bin/python -m pytest
