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
		Use:   "pki init|issue|renew|revoke|list",
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
			fmt.Fprintf(stdout, "revoked %s (%s); %s lists it: a gateway started with --pki %s reloads it within a second and cuts %s off; Mosquitto: crlfile %s, then restart it\n",
				rname, reason, filepath.Join(dir, "ca.crl"), dir, rname, filepath.Join(dir, "ca.crl"))
			return nil
		},
	}
	revokeCmd.Flags().StringVar(&rname, "name", "", "certificate to revoke")
	revokeCmd.Flags().StringVar(&reason, "reason", "unspecified", "reason: "+strings.Join(pki.Reasons(), ", "))

	var nname, nrole, nkeyType string
	var nserver, keepOld bool
	var nhosts []string
	var ndays int
	renewCmd := &cobra.Command{
		Use:   "renew --name NAME [--host H...] [--keep-old]",
		Short: "Replace a certificate with a new one and a new key (new hosts, days or role; the old one superseded)",
		Long: `renew issues NAME a new certificate with a new key, for a certificate about to expire, a broker
that needs other host names, or a device whose key must change. The old NAME.crt and NAME.key move
to DIR/superseded/NAME-SERIAL.crt and .key (keys are never overwritten), and the old certificate
is revoked with reason superseded (the CRL is rewritten), unless --keep-old: then it stays valid
until it expires, so a device can switch to the new one in its own time. What is not given
(--server, --host, --role, --key-type) is carried over from the old certificate; --host replaces
the host list.`,
		Example: `  iomtguard pki renew --dir ca --name gateway --host localhost --host 127.0.0.1
  iomtguard pki renew --dir ca --name bed1-ecg --days 730 --keep-old`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if nname == "" {
				return usageError{errors.New("--name is required")}
			}
			if err := checkInt("days", ndays, 1, 36500); err != nil {
				return err
			}
			r, err := pki.Renew(dir, nname, pki.Options{Server: nserver, Hosts: nhosts, Role: nrole, Days: ndays, KeyType: pki.KeyType(nkeyType)}, keepOld)
			if err != nil {
				return pkiError(err)
			}
			old := "kept valid until " + r.Old.NotAfter.Format("2006-01-02")
			if r.Revoked {
				old = "revoked (superseded; " + filepath.Join(dir, "ca.crl") + " rewritten)"
			}
			fmt.Fprintf(stdout, "renewed %s: serial %s until %s (%s and %s); the old serial %s moved to %s.crt/.key, %s\n",
				nname, r.Cert.SerialNumber.Text(16), r.Cert.NotAfter.Format("2006-01-02"), filepath.Join(dir, nname+".crt"),
				filepath.Join(dir, nname+".key"), r.Old.Serial, r.MovedTo, old)
			if r.Inherits != "" {
				fmt.Fprintf(stdout, "carried over: %s\n", r.Inherits)
			}
			return nil
		},
	}
	f = renewCmd.Flags()
	f.StringVar(&nname, "name", "", "certificate to renew")
	f.BoolVar(&nserver, "server", false, "make it a broker certificate (kept if the old one was)")
	f.StringSliceVar(&nhosts, "host", nil, "broker DNS names and IP addresses (replace the old list)")
	f.StringVar(&nrole, "role", "", "device role (default: the old one)")
	f.IntVar(&ndays, "days", 365, "validity in days")
	f.StringVar(&nkeyType, "key-type", "", "ecdsa-p256 or ed25519 (default: the old one)")
	f.BoolVar(&keepOld, "keep-old", false, "leave the old certificate valid until it expires (a rollover)")

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
	cmd.AddCommand(initCmd, issueCmd, renewCmd, revokeCmd, listCmd)
	return cmd
}

func pkiError(err error) error {
	if errors.Is(err, pki.ErrExists) || errors.Is(err, pki.ErrName) || errors.Is(err, pki.ErrNoCA) || errors.Is(err, pki.ErrNotFound) {
		return usageError{err}
	}
	return err
}
