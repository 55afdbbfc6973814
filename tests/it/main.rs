//! Integration tests: the real `kiln` binary against real servers on loopback.

mod util;

mod browser;
mod build;
mod daemon;
mod distributed;
mod django;
mod durability;
mod fill;
mod hostile;
mod hostile2;
mod https;
mod init;
mod journal;
mod layout;
mod machine;
mod nginx;
mod operator;
mod outbox;
mod pool;
mod publish;
mod purge;
mod readme;
mod redis;
mod referee;
mod referee_django;
mod referee_wagtail;
mod render;
mod render_trust;
mod requests;
mod serve;
mod stale;
mod usage;
mod visitor;
mod wordpress;
