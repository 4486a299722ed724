# iomtguard: the README's commands, spelled out.
GO ?= go

.PHONY: test build bench fuzz fixtures compare clean

test:            ## the test command (what .ci/run runs)
	$(GO) test ./...

build:
	CGO_ENABLED=0 $(GO) build -o bin/iomtguard ./cmd/iomtguard

bench:           ## benchmarks of the hot paths (builds the 1.09M-frame capture on first use)
	$(GO) test -run xxx -bench . -benchmem ./internal/...

fuzz:            ## ten minutes per parser
	for t in "internal/capture FuzzPcap" "internal/capture FuzzPcapng" "internal/mqtt FuzzDecode" "internal/mqtt FuzzFramer" "internal/mqtt FuzzSecrets" \
		"internal/packet FuzzDecode" "internal/tlsinfo FuzzStream" "internal/websocket FuzzConn" "internal/dataset FuzzReader" "internal/policy FuzzParse" \
		"internal/policy FuzzGlob" "seal FuzzOpen" "internal/gateway FuzzSession"; do \
		set -- $$t; $(GO) test ./$$1 -run xxx -fuzz "^$$2\$$" -fuzztime 10m -fuzzminimizetime 5s || exit 1; done

fixtures:        ## regenerate the tshark reference fixtures (needs tshark)
	scripts/tshark_fixtures.sh

compare: build   ## compare the icu-csv export with tshark on the shared captures (needs tshark)
	for f in ../shared/data/captures/*.pcap*; do python3 scripts/compare_icu.py --iomtguard bin/iomtguard $$f || exit 1; done

clean:
	rm -rf bin iomtguard-report
