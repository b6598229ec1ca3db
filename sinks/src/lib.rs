//! The compaction sink: aged (tenant, year) partitions of the hot store exported to Parquet
//! on an object store, verified, then removed from the hot store.
//!
//! Not built yet: this crate is a reserved place in the workspace layout. Nothing depends on
//! it and the binary does not offer an archive command.
