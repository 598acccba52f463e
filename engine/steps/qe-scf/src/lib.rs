//! The `qe-scf` step: Quantum ESPRESSO SCF energies, forces and stress for many
//! structures, with failures classified and recovered by a policy that is data.
//!
//! Pipeline, pure where it can be: structure files → [`structure`] → [`input`]
//! (pseudopotentials from [`pseudo`], k-grid and pools from [`kpoints`]) → `pw.in`; pw.x
//! runs in [`run`] (the only module with processes) → its output is classified
//! ([`classify`]) and parsed ([`output`]) → the policy ([`policy`]) decides the next attempt
//! or gives up → results ([`results`]) as JSON per structure and an aggregate extxyz.
//! [`plan`] renders what `flow plan` shows.
//!
//! The engine's entry points: [`settings::Settings::from_json`], [`plan::expand_structures`],
//! [`plan::plan_summary`], [`task::run_task`] (or [`run::run_structure`] for a prepared
//! structure), [`results::write_extxyz`].

pub mod classify;
pub mod elements;
pub mod error;
pub mod failure;
pub mod input;
pub mod kpoints;
pub mod output;
pub mod params;
pub mod plan;
pub mod policy;
pub mod pseudo;
pub mod results;
pub mod results_table;
pub mod run;
pub mod settings;
pub mod structure;
pub mod task;
pub mod upf_header;
pub mod yaml;

pub use error::QeError;
pub use failure::Failure;
pub use policy::{next_parameters, AttemptRecord, Decision, FatalReport, History, RecoveryPolicy};
pub use settings::Settings;
