// Most of a broker test waits (servers, fsync, PostgreSQL, deliveries) rather than computes: three classes at a time
// instead of one per core keep the suite near 20 minutes on a two-core machine, the PostgreSQL halves included.
[assembly: CollectionBehavior(MaxParallelThreads = 3)]
