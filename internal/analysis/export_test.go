package analysis

// The worker's batch size, for tests that must send more batches than the
// worker has buffers.
const RecBatch, RecQueued = recBatch, recQueued
