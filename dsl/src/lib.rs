//! flow's campaign language.
//!
//! The pipeline: bytes -> [`yaml_loader`] (a [`node::Node`] tree with positions) ->
//! [`schema`] validation of each file -> [`merge`] of machine, campaign defaults and step ->
//! [`model`] (typed campaign). Every stage reports [`diagnostic::Diagnostics`] that name the
//! user's file, line, column and field.

pub mod array;
pub mod diagnostic;
pub mod error_class;
pub mod json_view;
pub mod load;
pub mod merge;
pub mod model;
pub mod node;
pub mod quantity;
pub mod recipes;
pub mod schema;
pub mod secrets;
pub mod shell_context;
pub mod source;
pub mod template;
pub mod yaml_loader;
