pub mod error_class;
