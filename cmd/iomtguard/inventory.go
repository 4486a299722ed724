package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/inventory"
)

func inventoryCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Compare device inventories (what analyze --inventory and analysis.json hold)",
		Long: `The device inventory comes from what the devices do on the network: 'iomtguard analyze
CAPTURE --inventory FILE.json' (or .csv) writes it, and every analysis.json holds it. inventory
diff compares two: devices new, gone, and changed.`,
	}
	cmd.AddCommand(inventoryDiffCmd(stdout, stderr))
	return cmd
}

func inventoryDiffCmd(stdout, stderr io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Devices new, gone and changed between two inventories",
		Long: `diff compares two inventories by device (client ID, or broker:ADDR:PORT, or host:ADDR).
OLD and NEW are what 'iomtguard analyze --inventory FILE' writes (.json or .csv), or analysis.json
files.

It lists the devices new in NEW, those gone from it, and for each device in both what
changed: transport (TLS lost), credential kind, certificate identity, username, role, kind,
addresses, MACs, MQTT versions, brokers, topics published and filters subscribed. A change that
weakens a device or widens what it talks to (TLS lost, a weaker credential, a new identity,
username or MAC, new brokers, topics or filters) is marked "!": what a cloned or compromised
device looks like, and what a segmentation policy would refuse.

Exit status as diff(1): 0 when the inventories are the same, 1 when they differ, 2 on an error.`,
		Example: `  iomtguard analyze monday.pcapng --inventory monday.json --no-report
  iomtguard analyze tuesday.pcapng --inventory tuesday.json --no-report
  iomtguard inventory diff monday.json tuesday.json
  iomtguard inventory diff --json old-report/analysis.json new-report/analysis.json | jq .changed`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var lists [2][]inventory.Device
			for i, path := range args {
				f, err := os.Open(path)
				if err != nil {
					return usageError{err}
				}
				if strings.HasSuffix(path, ".csv") {
					lists[i], err = inventory.ReadCSV(f)
				} else {
					lists[i], err = inventory.ReadJSON(f)
				}
				f.Close()
				if err != nil {
					return usageError{fmt.Errorf("%s: %w", path, err)}
				}
			}
			d := inventory.Compare(lists[0], lists[1])
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(d); err != nil {
					return err
				}
			} else {
				printDiff(stdout, args[0], args[1], len(lists[0]), len(lists[1]), d)
			}
			if !d.Empty() {
				return silentError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write the differences as JSON (new, gone, changed)")
	return cmd
}

func printableAll(xs []string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = inventory.Printable(x)
	}
	return strings.Join(out, " ")
}

func printDiff(w io.Writer, a, b string, na, nb int, d inventory.Diff) {
	fmt.Fprintf(w, "%s: %d devices; %s: %d devices\n", a, na, b, nb)
	if d.Empty() {
		fmt.Fprintln(w, "no difference")
		return
	}
	fmt.Fprintf(w, "%d new, %d gone, %d changed\n", len(d.New), len(d.Gone), len(d.Changed))
	for _, x := range d.New {
		fmt.Fprintf(w, "+ %s  new %s (%s) at %s, %s, credential %s\n", inventory.Printable(x.Key), x.Kind, x.Role, printableAll(x.Addrs), x.Transport, x.Credential)
	}
	for _, x := range d.Gone {
		fmt.Fprintf(w, "- %s  gone: %s (%s), last seen %s\n", inventory.Printable(x.Key), x.Kind, x.Role, x.LastSeen.Format("2006-01-02 15:04:05"))
	}
	for _, c := range d.Changed {
		mark := "~"
		if c.Worse {
			mark = "!"
		}
		fmt.Fprintf(w, "%s %s  (%s)\n", mark, inventory.Printable(c.Key), c.Kind)
		for _, ch := range c.Changes {
			fmt.Fprintf(w, "    %s\n", inventory.Printable(ch))
		}
	}
}
