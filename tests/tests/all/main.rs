//! End-to-end tests of bulkhost over real HTTP and its command line, one module per surface.

mod attachments;
mod auth;
mod batch;
mod bulk_export;
mod change_feed;
mod change_hooks;
mod client;
mod collections;
mod config;
mod copy;
mod erp_datasets;
mod hosts;
mod isolation;
mod observability;
mod operator;
mod ops;
mod plugin_kit;
mod plugins;
mod process;
mod quotas;
mod receivers;
mod sandbox;
mod sync;
