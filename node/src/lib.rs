//! Shared runtime of every Sluice node.
