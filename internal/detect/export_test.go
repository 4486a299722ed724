package detect

// SetMaxEnds sets the connection storm's bound on the session ends kept
// until the test ends.
func SetMaxEnds(cleanup func(func()), n int) {
	old := maxEnds
	maxEnds = n
	cleanup(func() { maxEnds = old })
}
