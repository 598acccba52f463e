//! flow's campaign language.
//!
//! The pipeline: bytes -> [`yaml_loader`] (a [`node::Node`] tree with positions) ->
//! [`schema`] validation of each file -> [`merge`] of machine, campaign defaults and step ->
//! [`model`] (typed campaign, with the machine's typed [`machine_settings`] and their
//! built-in defaults). Every stage reports [`diagnostic::Diagnostics`] that name the
//! user's file, line, column and field.

pub mod array;
pub mod array_repeats;
pub mod diagnostic;
pub mod error_class;
pub mod json_view;
pub mod load;
pub mod machine_settings;
pub mod merge;
pub mod model;
pub mod node;
pub mod on_retry;
pub mod provenance;
pub mod quantity;
pub mod recipes;
pub mod schema;
pub mod secrets;
pub mod shell_context;
pub mod shell_reevaluation;
pub mod source;
pub mod template;
pub mod user_file;
pub mod yaml_loader;
