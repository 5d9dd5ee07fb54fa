/**
 * Quartermaster for NetSuite: a User Event script that tells Quartermaster about changes.
 *
 * NetSuite has no outbound webhooks, so this script, deployed on inventory items, sales orders,
 * item fulfilments and inventory adjustments/transfers, POSTs each created, edited or deleted
 * record to Quartermaster's inbound endpoint `POST /webhooks/netsuite/{connectorId}` after it is
 * saved. Each message is signed: `X-QM-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`
 * with `X-QM-Timestamp` (Unix seconds) and `X-QM-Event-Id` (the de-duplication key), the secret
 * being the installation's, kept in NetSuite as an API secret. Quartermaster refuses a message
 * whose signature does not match, that is older than five minutes, or that it has seen; it polls
 * SuiteQL as the safety net, so a message lost here is picked up by the next poll.
 *
 * @NApiVersion 2.1
 * @NScriptType UserEventScript
 * @NModuleScope SameAccount
 */
define(['N/https', 'N/crypto', 'N/encode', 'N/runtime', 'N/log'], (https, crypto, encode, runtime, log) => {
    /** Script parameters (set on the deployment). */
    const PARAM_URL = 'custscript_qm_endpoint_url';
    const PARAM_SECRET = 'custscript_qm_secret_id';

    /** The record types the script reports, by NetSuite record type. */
    const KINDS = {
        inventoryitem: 'item',
        assemblyitem: 'item',
        kititem: 'item',
        salesorder: 'sales_order',
        itemfulfillment: 'item_fulfillment',
        inventoryadjustment: 'inventory',
        inventorytransfer: 'inventory',
        returnauthorization: 'return_authorization',
        itemreceipt: 'item_receipt',
    };

    /**
     * The message for one change: what changed and its id; Quartermaster reads the record back
     * through SuiteTalk, so the message carries no more than it needs to find it.
     */
    function buildPayload(context, record, accountId) {
        const type = String(record.type || '').toLowerCase();
        const kind = KINDS[type];
        if (!kind) {
            return null;
        }
        const modified = record.getValue ? record.getValue({ fieldId: 'lastmodifieddate' }) : null;
        return {
            account: accountId,
            kind: kind,
            recordType: type,
            id: String(record.id),
            externalId: (record.getValue && record.getValue({ fieldId: 'externalid' })) || null,
            event: String(context.type).toLowerCase(),
            lastModified: modified instanceof Date ? modified.toISOString() : modified ? String(modified) : null,
        };
    }

    /** The event id: one per record version (a retried message keeps it). */
    function eventId(payload) {
        return [payload.account, payload.recordType, payload.id, payload.event, payload.lastModified || ''].join(':');
    }

    /** `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`. */
    function sign(secretKey, timestamp, body) {
        const hmac = crypto.createHmac({ algorithm: crypto.HashAlg.SHA256, key: secretKey });
        hmac.update({ input: timestamp + '.' + body, inputEncoding: encode.Encoding.UTF_8 });
        return 'v1=' + hmac.digest({ outputEncoding: encode.Encoding.HEX }).toLowerCase();
    }

    /** The request to send for one change, or null for a record type the script does not report. */
    function buildRequest(context, secretKey, url, accountId, nowSeconds) {
        const payload = buildPayload(context, context.type === 'delete' ? context.oldRecord : context.newRecord, accountId);
        if (!payload) {
            return null;
        }
        const body = JSON.stringify(payload);
        const timestamp = String(nowSeconds);
        return {
            url: url,
            body: body,
            headers: {
                'Content-Type': 'application/json',
                'X-QM-Timestamp': timestamp,
                'X-QM-Event-Id': eventId(payload),
                'X-QM-Signature': sign(secretKey, timestamp, body),
            },
        };
    }

    function afterSubmit(context) {
        const script = runtime.getCurrentScript();
        const url = script.getParameter({ name: PARAM_URL });
        const secretId = script.getParameter({ name: PARAM_SECRET });
        if (!url || !secretId) {
            log.error({ title: 'Quartermaster', details: 'the endpoint URL or the secret is not set on the deployment' });
            return;
        }
        const key = crypto.createSecretKey({ secret: secretId, encoding: encode.Encoding.UTF_8 });
        const request = buildRequest(context, key, url, runtime.accountId, Math.floor(Date.now() / 1000));
        if (!request) {
            return;
        }
        try {
            const response = https.post(request);
            if (response.code < 200 || response.code >= 300) {
                log.audit({ title: 'Quartermaster', details: 'answered ' + response.code + ' for ' + request.headers['X-QM-Event-Id'] });
            }
        } catch (e) {
            // Never block the user's save: the next SuiteQL poll picks the change up.
            log.error({ title: 'Quartermaster', details: String(e) });
        }
    }

    return { afterSubmit: afterSubmit, buildPayload: buildPayload, buildRequest: buildRequest, sign: sign, eventId: eventId };
});
