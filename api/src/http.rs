//! The HTTP shell: POST /graphql, subscriptions over WebSocket on GET /graphql, GraphiQL on a
//! plain GET /graphql, /healthz, /readyz and /metrics.
//!
//! Credentials are checked before any GraphQL work (401 `UNAUTHENTICATED`); malformed bodies,
//! wrong content types and oversized bodies get 4xx answers with a typed error, never a 500.

use std::net::TcpListener;
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, guard, web};
use async_graphql::ErrorExtensions;
use async_graphql::http::GraphiQLSource;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::auth::{self, Caller};
use crate::graphql::loaders::Loaders;
use crate::graphql::{QmSchema, RequestData};
use crate::state::AppState;

/// The request body of a GraphQL POST. Unknown keys are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphqlBody {
    query: String,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))
}

fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn graphql(
    req: HttpRequest,
    body: web::Bytes,
    schema: web::Data<QmSchema>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let rid = request_id(&req);
    let span = tracing::info_span!("graphql", request_id = %rid, tenant = tracing::field::Empty, operation = tracing::field::Empty);
    let (mut resp, op, outcome) = handle(&req, body, &schema, &state, &rid).instrument(span).await;
    state.metrics.observe(&op, outcome, started.elapsed());
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert(header::HeaderName::from_static("x-request-id"), v);
    }
    resp
}

async fn handle(
    req: &HttpRequest,
    body: web::Bytes,
    schema: &QmSchema,
    state: &AppState,
    rid: &str,
) -> (HttpResponse, String, &'static str) {
    let unnamed = String::new();
    if !is_json(req) {
        return (
            error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, "BAD_REQUEST", "content type must be application/json"),
            unnamed,
            "rejected",
        );
    }
    if std::str::from_utf8(&body).is_err() {
        return (
            error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "body is not valid UTF-8"),
            unnamed,
            "rejected",
        );
    }
    let parsed: GraphqlBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("body is not a GraphQL request: {e}");
            return (error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &msg), unnamed, "rejected");
        }
    };
    let variables = match parsed.variables {
        None | Some(serde_json::Value::Null) => async_graphql::Variables::default(),
        Some(v @ serde_json::Value::Object(_)) => async_graphql::Variables::from_json(v),
        Some(_) => {
            return (
                error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "variables must be an object"),
                unnamed,
                "rejected",
            );
        }
    };
    let op = parsed.operation_name.clone().unwrap_or_default();
    tracing::Span::current().record("operation", op.as_str());
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match auth::authenticate(state, header).await {
        Ok(c) => c,
        Err(auth::AuthError::Db(e)) => {
            tracing::error!(error = %e, "authentication lookup failed");
            return (
                error_response(StatusCode::SERVICE_UNAVAILABLE, "INTERNAL_SERVER_ERROR", "internal error"),
                op,
                "error",
            );
        }
        Err(e) => {
            tracing::info!(reason = %e, "unauthenticated request");
            return (
                error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "missing or invalid credentials"),
                op,
                "unauthenticated",
            );
        }
    };
    let mut request = async_graphql::Request::new(parsed.query).variables(variables);
    if let Some(name) = parsed.operation_name {
        request = request.operation_name(name);
    }
    // Request extensions (persisted queries and the like) are accepted but not used yet.
    let _ = parsed.extensions;
    if let Caller::Tenant(p) = &caller {
        tracing::Span::current().record("tenant", tracing::field::display(p.tenant_id));
        request = request.data(Loaders::new(&state.db, p.tenant_id));
    }
    request = request.data(RequestData { caller, request_id: rid.to_owned() });
    let mut response = schema.execute(request).await;
    for err in &mut response.errors {
        let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
        if !has_code {
            // Our resolvers always set a code; a bare error with a path is async-graphql refusing an
            // argument value ("Failed to parse …", "Invalid value for argument …").
            let input = err.message.starts_with("Failed to parse") || err.message.starts_with("Invalid value");
            let code = if err.path.is_empty() {
                "GRAPHQL_VALIDATION_FAILED"
            } else if input {
                "BAD_USER_INPUT"
            } else {
                "INTERNAL_SERVER_ERROR"
            };
            if code == "INTERNAL_SERVER_ERROR" {
                tracing::error!(error = %err.message, "resolver error without a code");
                err.message = "internal error".into();
            }
            err.extensions.get_or_insert_with(Default::default).set("code", code);
        }
    }
    let outcome = if response.errors.is_empty() { "ok" } else { "error" };
    (HttpResponse::Ok().content_type("application/json").json(&response), op, outcome)
}

async fn graphiql() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(
        GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql").title("Quartermaster").finish(),
    )
}

fn is_websocket_upgrade(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The credential of a subscription: `connection_init`'s payload carries it as
/// `{"authorization": "Bearer …"}` (any capitalisation, or a bare token) or `{"token": "…"}`;
/// otherwise the upgrade request's own `Authorization` header counts.
fn init_authorization(payload: &serde_json::Value) -> Option<String> {
    let obj = payload.as_object()?;
    obj.iter().find_map(|(k, v)| {
        let v = v.as_str()?.trim();
        if k.eq_ignore_ascii_case("authorization") {
            Some(if v.contains(' ') { v.to_owned() } else { format!("Bearer {v}") })
        } else if k == "token" {
            Some(format!("Bearer {v}"))
        } else {
            None
        }
    })
}

/// GraphQL subscriptions over WebSocket (graphql-transport-ws and the legacy graphql-ws protocol).
/// A bad credential in `connection_init` closes the socket with 4403.
async fn graphql_ws(
    req: HttpRequest,
    payload: web::Payload,
    schema: web::Data<QmSchema>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let state = state.get_ref().clone();
    let rid = request_id(&req);
    let upgrade_header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    async_graphql_actix_web::GraphQLSubscription::new(schema.get_ref().clone())
        .on_connection_init(move |init: serde_json::Value| async move {
            let header = init_authorization(&init).or(upgrade_header);
            match auth::authenticate(&state, header.as_deref()).await {
                Ok(caller) => {
                    let mut data = async_graphql::Data::default();
                    data.insert(RequestData { caller, request_id: rid });
                    Ok(data)
                }
                Err(e) => {
                    tracing::info!(reason = %e, "unauthenticated subscription");
                    Err(async_graphql::Error::new("missing or invalid credentials")
                        .extend_with(|_, x| x.set("code", "UNAUTHENTICATED")))
                }
            }
        })
        .start(&req, payload)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.is_migrated().await {
        Ok(true) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(false) => HttpResponse::ServiceUnavailable().json(json!({ "status": "migrations pending" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({ "status": "database unreachable" }))
        }
    }
}

/// This process's request and job counters, and the job queue across every process.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut body = state.metrics.render();
    match crate::jobs::queue_stats(&state.db).await {
        Ok(stats) => body.push_str(&crate::metrics::render_queue(&stats, chrono::Utc::now())),
        Err(e) => tracing::warn!(error = %e, "reading the job queue for /metrics failed"),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body)
}

async fn not_found() -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

/// `POST /webhooks/{provider}/{connectorId}`: a provider's webhook for one of its connectors, 200
/// once verified and stored (or already stored: a retry), the work queued.
/// - `shopify`: `X-Shopify-Hmac-Sha256` over the raw body; 401 for a bad or missing signature.
/// - `netsuite`: our User Event script's `X-QM-Signature` over timestamp and body; 401 when it does
///   not match or the timestamp is more than five minutes off (a replay); 400 for a change of
///   another account.
/// - `shipbob`: Standard Webhooks; 401 for a bad signature or a stale timestamp.
/// - `shipstation`: V2 is signed with RSA-SHA256 (`x-shipengine-*`): 404 when a header is missing
///   or no public key is configured, 400 when the timestamp is more than five minutes off, 401
///   for an unknown key id or a bad signature. V1 is unsigned: `?token=` must be the connector's
///   (401 otherwise). 400 for a body without `resource_type` and what it is about.
///
/// 400 for other missing or malformed headers, 404 for an unknown provider, or an unknown or
/// uninstalled connector.
async fn provider_webhook(
    path: web::Path<(String, String)>,
    query: web::Query<std::collections::HashMap<String, String>>,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    use crate::services::connectors as c;
    let (provider, id) = path.into_inner();
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such connector");
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (db, sealer) = (&state.db, &state.sealer);
    let received = match provider.as_str() {
        "shopify" => c::receive_webhook(db, sealer, id, &body, header).await,
        "netsuite" => c::receive_netsuite(db, sealer, id, &body, header).await,
        "shipbob" => c::receive_shipbob(db, sealer, id, &body, header).await,
        "shipstation" => {
            c::receive_shipstation(db, sealer, id, query.get("token").map(String::as_str), &body, header).await
        }
        _ => return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route"),
    };
    inbound_response(id, received)
}

fn inbound_response(
    id: uuid::Uuid,
    received: Result<crate::services::connectors::Received, crate::services::connectors::InboundError>,
) -> HttpResponse {
    use crate::services::connectors::InboundError;
    use qm_connectors::netsuite::inbound::InboundError as NetSuite;
    use qm_connectors::shipstation::webhook::Refused;
    use qm_connectors::shopify::webhook::{SIGNATURE_HEADER, WebhookError};
    use qm_integrations::webhooks::WebhookError as Standard;
    match received {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({ "ok": true })),
        Err(InboundError::NotFound | InboundError::ShipStation(Refused::Missing)) => {
            error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such connector")
        }
        Err(InboundError::ShipStation(e @ (Refused::UnknownKey | Refused::BadSignature))) => {
            error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &e.to_string())
        }
        Err(InboundError::Refused(
            e @ (WebhookError::BadSignature | WebhookError::MissingHeader(SIGNATURE_HEADER)),
        )) => error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &e.to_string()),
        Err(InboundError::NetSuite(e @ (NetSuite::BadSignature | NetSuite::Stale))) => {
            error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &e.to_string())
        }
        Err(InboundError::Webhook(e @ (Standard::BadSignature | Standard::StaleTimestamp))) => {
            error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &e.to_string())
        }
        Err(
            e @ (InboundError::Refused(_)
            | InboundError::NetSuite(_)
            | InboundError::Webhook(_)
            | InboundError::ShipStation(_)
            | InboundError::OtherAccount(_)),
        ) => error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &e.to_string()),
        Err(InboundError::Db(e)) => {
            tracing::error!(error = %e, connector = %id, "storing a webhook failed");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "try again")
        }
    }
}

/// Liveness, readiness and metrics: on the API and on a worker's `QM_WORKER_LISTEN`.
fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// Binds /healthz, /readyz and /metrics alone to `listener`: a `quartermaster worker`'s endpoints
/// for an orchestrator's probes and a metrics scraper.
pub fn serve_ops(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new().app_data(state.clone()).configure(ops_routes).default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run())
}

/// Binds the routes to `listener`. `workers` of 0 means one per core.
pub fn serve(listener: TcpListener, state: AppState, workers: usize) -> std::io::Result<Server> {
    let schema = web::Data::new(crate::graphql::schema(state.clone()));
    let limit = state.config.limits.max_body_bytes;
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(schema.clone())
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(limit))
            .route("/graphql", web::post().to(graphql))
            .route("/graphql", web::get().guard(guard::fn_guard(is_websocket_upgrade)).to(graphql_ws))
            .route("/graphql", web::get().to(graphiql))
            .route("/webhooks/{provider}/{connector_id}", web::post().to(provider_webhook))
            .configure(ops_routes)
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(30)
    .listen(listener)?;
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}
