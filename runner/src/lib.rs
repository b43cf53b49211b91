//! The command runner shared by the hub and `watchpost-agent`: commands as a `[[commands]]` table declares
//! them ([`spec`]), and one run of a program — no shell, a cleared environment, a timeout, its own process
//! group — read line by line ([`process`], [`lines`]). A host's agent runs its own commands with the very
//! code the hub runs its own with, so both keep the same promises.

pub mod lines;
pub mod process;
pub mod spec;
