// Tests of the User Event script with node's built-in test runner: `node --test` in this folder.
// The N/* modules are stubs; N/crypto's HMAC is node's, so the signature is checked against an
// independent implementation, and `vector.json` is the message the Rust verifier checks too.
const test = require('node:test');
const assert = require('node:assert');
const nodeCrypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

/** Loads the script with `define` captured and the given N/* stubs. */
function load(stubs) {
    let factory;
    global.define = (deps, f) => {
        factory = () => f(...deps.map((d) => stubs[d]));
    };
    delete require.cache[require.resolve('../qm_user_event.js')];
    require('../qm_user_event.js');
    delete global.define;
    return factory();
}

function stubs(sent) {
    return {
        'N/https': {
            post: (req) => {
                sent.push(req);
                return { code: 202 };
            },
        },
        'N/crypto': {
            HashAlg: { SHA256: 'sha256' },
            createSecretKey: ({ secret }) => ({ secret }),
            createHmac: ({ algorithm, key }) => {
                const h = nodeCrypto.createHmac(algorithm, key.secret);
                return {
                    update: ({ input }) => h.update(input, 'utf8'),
                    digest: () => h.digest('hex').toUpperCase(),
                };
            },
        },
        'N/encode': { Encoding: { UTF_8: 'UTF_8', HEX: 'HEX' } },
        'N/runtime': {
            accountId: '1234567_SB1',
            getCurrentScript: () => ({
                getParameter: ({ name }) =>
                    ({
                        custscript_qm_endpoint_url: 'https://qm.example/webhooks/netsuite/0190a2b4-0000-7000-8000-000000000001',
                        custscript_qm_secret_id: 'nsqm_test_secret',
                    })[name],
            }),
        },
        'N/log': { error: () => {}, audit: () => {} },
    };
}

function record(type, id, fields) {
    return { type, id, getValue: ({ fieldId }) => fields[fieldId] };
}

const vector = JSON.parse(fs.readFileSync(path.join(__dirname, 'vector.json'), 'utf8'));

test('a sales order edit becomes a signed message that matches the shared vector', () => {
    const script = load(stubs([]));
    const context = {
        type: 'edit',
        newRecord: record('salesorder', 4711, { externalid: 'shopify-1001', lastmodifieddate: new Date('2026-01-15T15:04:05Z') }),
    };
    const req = script.buildRequest(context, { secret: vector.secret }, vector.url, vector.account, vector.timestamp);
    assert.strictEqual(req.body, vector.body);
    assert.strictEqual(req.headers['X-QM-Timestamp'], String(vector.timestamp));
    assert.strictEqual(req.headers['X-QM-Event-Id'], vector.event_id);
    assert.strictEqual(req.headers['X-QM-Signature'], vector.signature);
    const independent = nodeCrypto.createHmac('sha256', vector.secret).update(`${vector.timestamp}.${vector.body}`).digest('hex');
    assert.strictEqual(req.headers['X-QM-Signature'], `v1=${independent}`);
});

test('a deleted record is reported from its old version; other record types are not reported', () => {
    const script = load(stubs([]));
    const deleted = { type: 'delete', oldRecord: record('inventoryitem', 99, { lastmodifieddate: '1/15/2026 10:04 am' }) };
    const req = script.buildRequest(deleted, { secret: 's' }, 'https://qm.example/x', 'ACCT', 1800000000);
    const payload = JSON.parse(req.body);
    assert.deepStrictEqual(payload, {
        account: 'ACCT', kind: 'item', recordType: 'inventoryitem', id: '99', externalId: null, event: 'delete',
        lastModified: '1/15/2026 10:04 am',
    });
    const customer = { type: 'create', newRecord: record('customer', 5, {}) };
    assert.strictEqual(script.buildRequest(customer, { secret: 's' }, 'https://qm.example/x', 'ACCT', 1), null);
});

test('afterSubmit posts once with the deployment settings and never throws into the save', () => {
    const sent = [];
    const s = stubs(sent);
    const script = load(s);
    script.afterSubmit({ type: 'create', newRecord: record('itemfulfillment', 7, { lastmodifieddate: null }) });
    assert.strictEqual(sent.length, 1);
    assert.strictEqual(sent[0].url, 'https://qm.example/webhooks/netsuite/0190a2b4-0000-7000-8000-000000000001');
    assert.match(sent[0].headers['X-QM-Signature'], /^v1=[0-9a-f]{64}$/);
    s['N/https'].post = () => {
        throw new Error('SSS_REQUEST_TIME_EXCEEDED');
    };
    const failing = load(s);
    assert.doesNotThrow(() => failing.afterSubmit({ type: 'edit', newRecord: record('salesorder', 8, {}) }));
});
