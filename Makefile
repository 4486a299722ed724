# iomtguard: the README's commands, spelled out.
GO ?= go

.PHONY: test build bench fuzz fixtures compare clean

test:            ## the test command (what .ci/run runs)
	$(GO) test ./...

build:
	CGO_ENABLED=0 $(GO) build -o bin/iomtguard ./cmd/iomtguard

bench:           ## benchmarks of the hot paths (builds the 1.09M-frame capture on first use)
	$(GO) test -run xxx -bench . -benchmem ./internal/...

fuzz:            ## ten minutes per fuzz target (FUZZTIME=30s for less); every Fuzz function of the tree
	@grep -rl --include='*_test.go' '^func Fuzz' cmd internal seal | sort | while read -r f; do \
		d=$$(dirname "$$f"); \
		for n in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' "$$f" | cut -d' ' -f2); do \
			echo "== ./$$d $$n"; \
			$(GO) test ./$$d -run xxx -fuzz "^$$n\$$" -fuzztime $${FUZZTIME:-10m} -fuzzminimizetime 5s || exit 1; \
		done; \
	done

fixtures:        ## regenerate the tshark reference fixtures (needs tshark)
	scripts/tshark_fixtures.sh

compare: build   ## compare the icu-csv export with tshark on the shared captures (needs tshark)
	for f in ../shared/data/captures/*.pcap*; do python3 scripts/compare_icu.py --iomtguard bin/iomtguard $$f || exit 1; done

clean:
	rm -rf bin iomtguard-report
