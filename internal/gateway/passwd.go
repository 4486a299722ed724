package gateway

import (
	"bufio"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Password hashes: "pbkdf2-sha256$ITERATIONS$SALT$HASH" (base64, no padding),
// one "name:hash" per line in a password file.
const pbkdf2Iterations = 210000 // OWASP's 2023 figure for PBKDF2-HMAC-SHA256

// HashPassword hashes a password for a password file.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	h, err := pbkdf2.Key(sha256.New, pw, salt, pbkdf2Iterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", pbkdf2Iterations, enc.EncodeToString(salt), enc.EncodeToString(h)), nil
}

// checkPassword compares in constant time.
func checkPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pw, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// ReadPasswords reads a password file.
func ReadPasswords(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parsePasswords(path, f)
}

func parsePasswords(name string, r io.Reader) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(hash, "pbkdf2-sha256$") {
			return nil, fmt.Errorf("%w: %s:%d: want NAME:pbkdf2-sha256$... (made by iomtguard gateway passwd)", ErrConfig, name, n)
		}
		m[user] = hash
	}
	return m, sc.Err()
}

// SetPassword adds or replaces user's hash in the password file at path
// (created 0600).
func SetPassword(path, user, pw string) error {
	if user == "" || strings.ContainsAny(user, ":\n") {
		return fmt.Errorf("gateway: invalid user name %q", user)
	}
	m := map[string]string{}
	if _, err := os.Stat(path); err == nil {
		if m, err = ReadPasswords(path); err != nil {
			return err
		}
	}
	h, err := HashPassword(pw)
	if err != nil {
		return err
	}
	m[user] = h
	var b strings.Builder
	b.WriteString("# iomtguard gateway password file: NAME:pbkdf2-sha256$iterations$salt$hash\n")
	for u, hh := range m {
		fmt.Fprintf(&b, "%s:%s\n", u, hh)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
