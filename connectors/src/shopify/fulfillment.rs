//! Shipments made here sent to the shop: the order's fulfilment orders read fresh, our lines'
//! quantities placed on their open fulfilment-order line items, then one `fulfillmentCreate` with
//! the tracking. `fulfillmentCreate` takes no idempotency key, so a repeat first looks for a
//! fulfilment with the same tracking number (an earlier attempt that applied but whose answer was
//! lost) and answers with it.

use serde_json::{Value, json};

use super::client::Client;
use crate::ProviderError;
use crate::source::{ShipmentSink, ShippedLine, Tracking};

/// The open fulfilment orders (5 at most, 50 lines each) and the fulfilments with their tracking.
const FULFILLMENT_ORDERS: &str = "query FulfillmentOrders($id: ID!) { order(id: $id) { id fulfillmentOrders(first: 5) { nodes { id status lineItems(first: 50) { nodes { id remainingQuantity lineItem { id } } } } } fulfillments(first: 20) { id status trackingInfo(first: 1) { number } } } }";
/// Its cost as Shopify calculates it: the order, 5 × (the fulfilment order, 50 line items with
/// their line item), 20 fulfilments with their tracking.
const FULFILLMENT_ORDERS_COST: f64 = (1 + 2 + 5 * (1 + 2 + 50 * 2) + 20 * 2) as f64;
const CREATE: &str = "mutation fulfillmentCreate($fulfillment: FulfillmentInput!) { fulfillmentCreate(fulfillment: $fulfillment) { fulfillment { id status } userErrors { field message } } }";

/// One fulfilment order's line items to ship: `(fulfilment order id, [(its line item id, quantity)])`.
type Plan = Vec<(String, Vec<(String, i64)>)>;

/// Places each line's quantity on the open fulfilment-order line items for it, in order, up to
/// what they still hold.
fn plan(order: &Value, lines: &[ShippedLine]) -> Plan {
    let mut wanted: Vec<(String, i64)> = lines.iter().map(|l| (l.line_id.clone(), l.quantity)).collect();
    let mut out = Plan::new();
    let orders = order.pointer("/fulfillmentOrders/nodes").and_then(Value::as_array).into_iter().flatten();
    for fo in orders {
        if !matches!(fo.get("status").and_then(Value::as_str), Some("OPEN" | "IN_PROGRESS")) {
            continue;
        }
        let Some(fo_id) = fo.get("id").and_then(Value::as_str) else { continue };
        let mut items = Vec::new();
        for item in fo.pointer("/lineItems/nodes").and_then(Value::as_array).into_iter().flatten() {
            let (Some(id), Some(line), Some(remaining)) = (
                item.get("id").and_then(Value::as_str),
                item.pointer("/lineItem/id").and_then(Value::as_str),
                item.get("remainingQuantity").and_then(Value::as_i64),
            ) else {
                continue;
            };
            if let Some((_, left)) = wanted.iter_mut().find(|(l, left)| l == line && *left > 0) {
                let take = remaining.min(*left);
                if take > 0 {
                    *left -= take;
                    items.push((id.to_owned(), take));
                }
            }
        }
        if !items.is_empty() {
            out.push((fo_id.to_owned(), items));
        }
    }
    out
}

/// A fulfilment of the order (not cancelled) carrying tracking number `number`.
fn shipped_with(order: &Value, number: &str) -> Option<String> {
    order.get("fulfillments").and_then(Value::as_array).into_iter().flatten().find_map(|f| {
        let cancelled = matches!(f.get("status").and_then(Value::as_str), Some("CANCELLED" | "ERROR" | "FAILURE"));
        let same = f.get("trackingInfo").and_then(Value::as_array).into_iter().flatten().any(|t| t["number"] == number);
        (!cancelled && same).then(|| f.get("id").and_then(Value::as_str).map(str::to_owned)).flatten()
    })
}

#[async_trait::async_trait]
impl ShipmentSink for Client {
    async fn ship(&self, order_id: &str, lines: &[ShippedLine], tracking: &Tracking) -> Result<String, ProviderError> {
        let a = self.query(FULFILLMENT_ORDERS, json!({ "id": order_id }), FULFILLMENT_ORDERS_COST).await?;
        let order = a.data.get("order").filter(|o| o.is_object()).ok_or_else(|| {
            ProviderError::Permanent(format!("Shopify has no order {order_id} (deleted?): the shipment was not sent"))
        })?;
        if let Some(existing) = tracking.number.as_deref().and_then(|n| shipped_with(order, n)) {
            tracing::info!(order = order_id, fulfillment = %existing, "the shop already has this shipment");
            return Ok(existing);
        }
        let plan = plan(order, lines);
        if plan.is_empty() {
            return Err(ProviderError::Permanent(
                "the shop has nothing of these lines left to fulfil (fulfilled or cancelled there)".into(),
            ));
        }
        let by_order: Vec<Value> = plan
            .into_iter()
            .map(|(fo, items)| {
                json!({
                    "fulfillmentOrderId": fo,
                    "fulfillmentOrderLineItems": items.into_iter().map(|(id, quantity)| json!({ "id": id, "quantity": quantity })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut fulfillment = json!({ "lineItemsByFulfillmentOrder": by_order, "notifyCustomer": false });
        if tracking.company.is_some() || tracking.number.is_some() || tracking.url.is_some() {
            fulfillment["trackingInfo"] =
                json!({ "company": tracking.company, "number": tracking.number, "url": tracking.url });
        }
        // Not repeated here after a transient failure: the job's retry looks for it first.
        let a = self.mutate_once(CREATE, json!({ "fulfillment": fulfillment }), 10.0).await?;
        let result = &a.data["fulfillmentCreate"];
        let errors: Vec<&str> =
            result["userErrors"].as_array().into_iter().flatten().filter_map(|e| e["message"].as_str()).collect();
        if !errors.is_empty() {
            return Err(ProviderError::Permanent(format!("the shop refused the shipment: {}", errors.join("; "))));
        }
        result
            .pointer("/fulfillment/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Decode("fulfillmentCreate answered no fulfillment".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Value {
        json!({
            "id": "gid://shopify/Order/1",
            "fulfillmentOrders": { "nodes": [
                { "id": "gid://shopify/FulfillmentOrder/10", "status": "CLOSED", "lineItems": { "nodes": [
                    { "id": "gid://shopify/FulfillmentOrderLineItem/100", "remainingQuantity": 0, "lineItem": { "id": "gid://shopify/LineItem/1" } }
                ] } },
                { "id": "gid://shopify/FulfillmentOrder/11", "status": "OPEN", "lineItems": { "nodes": [
                    { "id": "gid://shopify/FulfillmentOrderLineItem/110", "remainingQuantity": 2, "lineItem": { "id": "gid://shopify/LineItem/1" } },
                    { "id": "gid://shopify/FulfillmentOrderLineItem/111", "remainingQuantity": 5, "lineItem": { "id": "gid://shopify/LineItem/2" } }
                ] } },
                { "id": "gid://shopify/FulfillmentOrder/12", "status": "IN_PROGRESS", "lineItems": { "nodes": [
                    { "id": "gid://shopify/FulfillmentOrderLineItem/120", "remainingQuantity": 1, "lineItem": { "id": "gid://shopify/LineItem/1" } }
                ] } }
            ] },
            "fulfillments": [
                { "id": "gid://shopify/Fulfillment/7", "status": "SUCCESS", "trackingInfo": [{ "number": "1Z1" }] },
                { "id": "gid://shopify/Fulfillment/8", "status": "CANCELLED", "trackingInfo": [{ "number": "1Z2" }] }
            ]
        })
    }

    #[test]
    fn quantities_go_to_open_fulfilment_order_items_up_to_what_they_hold() {
        let lines = [
            ShippedLine { line_id: "gid://shopify/LineItem/1".into(), quantity: 4 },
            ShippedLine { line_id: "gid://shopify/LineItem/2".into(), quantity: 2 },
        ];
        assert_eq!(
            plan(&order(), &lines),
            vec![
                (
                    "gid://shopify/FulfillmentOrder/11".to_owned(),
                    vec![
                        ("gid://shopify/FulfillmentOrderLineItem/110".to_owned(), 2),
                        ("gid://shopify/FulfillmentOrderLineItem/111".to_owned(), 2)
                    ]
                ),
                (
                    "gid://shopify/FulfillmentOrder/12".to_owned(),
                    vec![("gid://shopify/FulfillmentOrderLineItem/120".to_owned(), 1)]
                ),
            ],
            "the closed order is skipped; line 1 ships the 3 left, not 4"
        );
        assert!(plan(&order(), &[ShippedLine { line_id: "gid://shopify/LineItem/9".into(), quantity: 1 }]).is_empty());
    }

    #[test]
    fn a_repeat_finds_the_shipment_by_its_tracking_number_unless_cancelled() {
        assert_eq!(shipped_with(&order(), "1Z1").as_deref(), Some("gid://shopify/Fulfillment/7"));
        assert_eq!(shipped_with(&order(), "1Z2"), None);
        assert_eq!(shipped_with(&order(), "1Z3"), None);
    }
}
