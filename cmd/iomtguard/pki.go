package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/pki"
)

func pkiCmd(stdout, stderr io.Writer) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "pki init|issue|revoke|list",
		Short: "Run a certificate authority for devices and brokers (mTLS identities)",
		Long: `pki keeps a small CA in a directory (--dir): ca.crt and ca.key, NAME.crt and NAME.key for each
certificate issued, index.json, and the revocation list ca.crl. A device's identity is its
certificate's common name (what the iomtguard gateway and Mosquitto's use_identity_as_username
take as the MQTT identity) and a URI SAN iomtguard://device/NAME. Keys are ECDSA P-256 by default
(--key-type ed25519 for small devices with TLS 1.3), written 0600, never overwritten.`,
		Example: `  iomtguard pki init --dir ca
  iomtguard pki issue --dir ca --name broker --server --host broker.icu.local --host 10.5.126.84
  iomtguard pki issue --dir ca --name bed1-ecg --role ecg --days 365
  iomtguard pki revoke --dir ca --name bed1-ecg --reason key-compromise
  iomtguard pki list --dir ca
  mosquitto_pub --cafile ca/ca.crt --cert ca/bed1-ecg.crt --key ca/bed1-ecg.key -h broker.icu.local -p 8883 -t 1/ecg -m 72`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "pki", "CA directory")

	var org, keyType string
	var days int
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Make a CA: DIR/ca.crt and DIR/ca.key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkInt("days", days, 1, 36500); err != nil {
				return err
			}
			ca, err := pki.Init(dir, pki.Options{Org: org, KeyType: pki.KeyType(keyType), Days: days})
			if err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(stdout, "CA %q in %s (valid until %s): give %s to brokers and devices; keep %s secret\n",
				ca.Subject.CommonName, dir, ca.NotAfter.Format("2006-01-02"), filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
			return nil
		},
	}
	initCmd.Flags().StringVar(&org, "org", "iomtguard", "organisation name of the CA")
	initCmd.Flags().StringVar(&keyType, "key-type", "ecdsa-p256", "ecdsa-p256 or ed25519")
	initCmd.Flags().IntVar(&days, "days", 3650, "validity in days")

	var name, role, ikeyType string
	var server bool
	var hosts []string
	var idays int
	issueCmd := &cobra.Command{
		Use:   "issue --name NAME [--server --host H...] [--role R] [--days N]",
		Short: "Issue a device (client) or broker (--server) certificate: DIR/NAME.crt and DIR/NAME.key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return usageError{errors.New("--name is required")}
			}
			if len(hosts) > 0 && !server {
				return usageError{errors.New("--host is for broker certificates: add --server")}
			}
			if err := checkInt("days", idays, 1, 36500); err != nil {
				return err
			}
			c, err := pki.Issue(dir, name, pki.Options{Server: server, Hosts: hosts, Role: role, Days: idays, KeyType: pki.KeyType(ikeyType)})
			if err != nil {
				return pkiError(err)
			}
			kind := "device"
			if server {
				kind = "broker"
			}
			fmt.Fprintf(stdout, "%s certificate %s (serial %s, until %s): %s and %s\n", kind, c.Subject.CommonName, c.SerialNumber.Text(16),
				c.NotAfter.Format("2006-01-02"), filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
			return nil
		},
	}
	f := issueCmd.Flags()
	f.StringVar(&name, "name", "", "device or broker name (the certificate's CN)")
	f.BoolVar(&server, "server", false, "a broker certificate (server authentication)")
	f.StringSliceVar(&hosts, "host", nil, "broker DNS names and IP addresses (with --server)")
	f.StringVar(&role, "role", "", "device role (OU and URI SAN iomtguard://role/ROLE)")
	f.IntVar(&idays, "days", 365, "validity in days")
	f.StringVar(&ikeyType, "key-type", "ecdsa-p256", "ecdsa-p256 or ed25519")

	var rname, reason string
	revokeCmd := &cobra.Command{
		Use:   "revoke --name NAME [--reason R]",
		Short: "Revoke a certificate and rewrite the CRL (DIR/ca.crl)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rname == "" {
				return usageError{errors.New("--name is required")}
			}
			ok := false
			for _, r := range pki.Reasons() {
				ok = ok || r == reason
			}
			if !ok {
				return usageError{fmt.Errorf("--reason: want one of %s", strings.Join(pki.Reasons(), ", "))}
			}
			if err := pki.Revoke(dir, rname, reason, pki.Options{}); err != nil {
				return pkiError(err)
			}
			fmt.Fprintf(stdout, "revoked %s (%s); %s lists it: give it to the gateway (gateway.tls.crl) or Mosquitto (crlfile)\n",
				rname, reason, filepath.Join(dir, "ca.crl"))
			return nil
		},
	}
	revokeCmd.Flags().StringVar(&rname, "name", "", "certificate to revoke")
	revokeCmd.Flags().StringVar(&reason, "reason", "unspecified", "reason: "+strings.Join(pki.Reasons(), ", "))

	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List the certificates issued, with their status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			es, err := pki.List(dir)
			if err != nil {
				return pkiError(err)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tROLE\tKEY\tSERIAL\tNOT AFTER\tSTATUS")
			now := time.Now()
			for _, e := range es {
				kind := "device"
				if e.Server {
					kind = "broker"
				}
				st := e.Status(now)
				if st == "revoked" {
					st += " " + e.Revoked.Format("2006-01-02") + " (" + e.Reason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, kind, e.Role, e.KeyType, e.Serial, e.NotAfter.Format("2006-01-02"), st)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(initCmd, issueCmd, revokeCmd, listCmd)
	return cmd
}

func pkiError(err error) error {
	if errors.Is(err, pki.ErrExists) || errors.Is(err, pki.ErrName) || errors.Is(err, pki.ErrNoCA) || errors.Is(err, pki.ErrNotFound) {
		return usageError{err}
	}
	return err
}
