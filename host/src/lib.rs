//! switchboard: a self-hostable, multi-tenant communications platform that tenants extend with
//! WebAssembly components. See `ARCHITECTURE.md` at the repository root for the map.

pub mod accounts;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod edge;
pub mod events;
pub mod media;
pub mod memory;
pub mod metering;
pub mod modules;
pub mod net;
pub mod presence;
pub mod queues;
pub mod routing;
pub mod runtime;
pub mod sid;
pub mod store;
pub mod telephony;
