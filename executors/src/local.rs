//! Local executor (being written)
