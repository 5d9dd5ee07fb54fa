//! Live updates for GraphQL subscriptions.
//!
//! A change publishes an [`Update`] on its [`Scoped`](crate::db::Scoped) transaction and nothing
//! leaves before the commit: a rolled-back change is never seen live. On PostgreSQL the commit
//! carries one `NOTIFY qm_live` per update, so every process on the database (each API replica)
//! hears it through its one listening connection; on SQLite the committing process broadcasts
//! in-process (a single server owns an embedded database).
//!
//! Live updates are best-effort: a subscriber that falls behind skips ahead, and a listener that
//! loses its connection misses what happened meanwhile. Webhooks are the durable channel.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "qm_live";
/// How many updates a slow subscriber may fall behind before it skips ahead.
const CAPACITY: usize = 4096;
/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; larger events travel by reference.
const MAX_NOTIFY_BYTES: usize = 7900;

/// A stock level after a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockChange {
    pub sku: String,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    /// The change in available stock (on hand minus reserved).
    pub delta: i64,
    /// The ledger movement kind: adjust, transfer_in, transfer_out, reserve, release, ship.
    pub kind: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// An outbox event, as webhook receivers get it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveEvent {
    pub id: Uuid,
    pub event_type: String,
    pub version: i32,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum Update {
    Stock(StockChange),
    Event(LiveEvent),
    /// An event too large for a notification; listeners read it from the outbox.
    EventRef {
        id: Uuid,
    },
}

/// An update of one tenant. Subscribers must filter on `tenant_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub tenant_id: Uuid,
    pub update: Update,
}

impl Message {
    /// The notification payload: the message itself, or a reference when it is too large.
    pub fn to_notify_payload(&self) -> String {
        let full = serde_json::to_string(self).unwrap_or_default();
        match &self.update {
            Update::Event(e) if full.len() > MAX_NOTIFY_BYTES => {
                let reference = Message { tenant_id: self.tenant_id, update: Update::EventRef { id: e.id } };
                serde_json::to_string(&reference).unwrap_or_default()
            }
            _ => full,
        }
    }
}

/// The process's fan-out point for live updates.
pub struct Bus {
    sender: broadcast::Sender<Arc<Message>>,
    /// Whether the PostgreSQL listener task runs.
    listening: Mutex<bool>,
    ready: watch::Sender<bool>,
}

impl Default for Bus {
    fn default() -> Self {
        Self { sender: broadcast::channel(CAPACITY).0, listening: Mutex::new(false), ready: watch::channel(false).0 }
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("subscribers", &self.sender.receiver_count()).finish()
    }
}

impl Bus {
    /// Hands committed updates to this process's subscribers.
    pub fn broadcast(&self, tenant_id: Uuid, updates: Vec<Update>) {
        for update in updates {
            // No subscriber is not an error.
            let _ = self.sender.send(Arc::new(Message { tenant_id, update }));
        }
    }

    /// A receiver of every tenant's updates from now on. On PostgreSQL this starts the listener
    /// (once per process) and waits, up to a few seconds, until it listens.
    pub async fn subscribe(self: &Arc<Self>, conn: &DatabaseConnection) -> broadcast::Receiver<Arc<Message>> {
        let rx = self.sender.subscribe();
        if conn.get_database_backend() != sea_orm::DbBackend::Postgres {
            return rx;
        }
        let start = {
            let mut listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
            !std::mem::replace(&mut *listening, true)
        };
        if start {
            tokio::spawn(listen(Arc::downgrade(self), conn.clone()));
        }
        let mut ready = self.ready.subscribe();
        if tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r)).await.is_err() {
            tracing::warn!("live updates: the database listener is not ready yet");
        }
        rx
    }

    /// Called by the listener: true (and marked stopped) when nobody subscribes any more.
    fn stop_if_idle(&self) -> bool {
        let mut listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        if self.sender.receiver_count() == 0 {
            *listening = false;
            self.ready.send_replace(false);
            return true;
        }
        false
    }
}

/// Runs while anyone subscribes: LISTEN on one connection and rebroadcast in this process.
async fn listen(bus: Weak<Bus>, conn: DatabaseConnection) {
    use sea_orm::sqlx::postgres::PgListener;
    let pool = conn.get_postgres_connection_pool().clone();
    loop {
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        let mut listener = match connected.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "live updates: cannot LISTEN");
                if stopped(&bus) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Some(b) = bus.upgrade() {
            b.ready.send_replace(true);
        }
        tracing::debug!("live updates: listening");
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let Some(b) = bus.upgrade() else { return };
                    if b.stop_if_idle() {
                        return;
                    }
                    match serde_json::from_str::<Message>(n.payload()) {
                        Ok(m) => dispatch(&b, &conn, m).await,
                        Err(e) => tracing::warn!(error = %e, "live updates: unreadable notification"),
                    }
                }
                // The connection dropped; sqlx reconnects and listens again on the next call.
                Ok(None) => {
                    tracing::warn!("live updates: listener connection lost, reconnecting");
                    if stopped(&bus) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live updates: listener failed");
                    if stopped(&bus) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

fn stopped(bus: &Weak<Bus>) -> bool {
    bus.upgrade().is_none_or(|b| b.stop_if_idle())
}

async fn dispatch(bus: &Bus, conn: &DatabaseConnection, m: Message) {
    let update = match m.update {
        Update::EventRef { id } => match read_event(conn, m.tenant_id, id).await {
            Ok(Some(e)) => Update::Event(e),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, event = %id, "live updates: cannot read a large event");
                return;
            }
        },
        other => other,
    };
    bus.broadcast(m.tenant_id, vec![update]);
}

async fn read_event(conn: &DatabaseConnection, tenant: Uuid, id: Uuid) -> Result<Option<LiveEvent>, DbErr> {
    use crate::db::entities::event;
    let db = crate::db::Db::from_conn(conn.clone());
    let s = db.scoped(tenant, crate::db::TxMode::Read).await?;
    let row = event::Entity::find_by_id((tenant, id)).one(&s.tx).await?;
    Ok(row.map(|e| LiveEvent {
        id: e.id,
        event_type: e.event_type,
        version: e.version,
        occurred_at: e.occurred_at,
        data: e.payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: Value) -> Message {
        Message {
            tenant_id: Uuid::nil(),
            update: Update::Event(LiveEvent {
                id: Uuid::from_u128(7),
                event_type: "order.created".into(),
                version: 1,
                occurred_at: DateTime::<Utc>::UNIX_EPOCH,
                data,
            }),
        }
    }

    #[test]
    fn stock_changes_survive_the_wire() {
        let m = Message {
            tenant_id: Uuid::from_u128(1),
            update: Update::Stock(StockChange {
                sku: "TEE".into(),
                variant_id: Uuid::from_u128(2),
                location_id: Uuid::from_u128(3),
                on_hand: 5,
                reserved: 1,
                delta: -1,
                kind: "reserve".into(),
                reason: "order".into(),
                at: DateTime::<Utc>::UNIX_EPOCH,
            }),
        };
        let back: Message = serde_json::from_str(&m.to_notify_payload()).expect("json");
        assert_eq!(back, m);
    }

    #[test]
    fn small_events_travel_whole_and_large_ones_by_reference() {
        let small = event(serde_json::json!({ "a": 1 }));
        let back: Message = serde_json::from_str(&small.to_notify_payload()).expect("json");
        assert_eq!(back, small);

        let large = event(serde_json::json!({ "blob": "x".repeat(10_000) }));
        let payload = large.to_notify_payload();
        assert!(payload.len() < MAX_NOTIFY_BYTES);
        let back: Message = serde_json::from_str(&payload).expect("json");
        assert_eq!(back.update, Update::EventRef { id: Uuid::from_u128(7) });
    }
}
