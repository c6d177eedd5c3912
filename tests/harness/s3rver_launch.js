// Runs s3rver (an S3-compatible server) for the tests: loopback only, a private port chosen by
// the kernel, objects in a temporary directory, an access key of the tests' own, the buckets
// "deployctl" and "deployctl-uploads" created. Writes the port to PORT_FILE once listening. Never for production.
//   node s3rver_launch.js MODULES_DIR DATA_DIR PORT_FILE ACCESS_KEY SECRET_KEY
'use strict';
const fs = require('fs');
const path = require('path');
const [modules, dataDir, portFile, accessKey, secretKey] = process.argv.slice(2);
const S3rver = require(path.join(modules, 's3rver'));
const account = require(path.join(modules, 's3rver', 'lib', 'models', 'account'));
account.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
account.DUMMY_ACCOUNT.revokeAccessKey('S3RVER'); // only our key is known
addMultipartUploadCalls();

// s3rver 3.7.1 answers AbortMultipartUpload and ListParts with 405 MethodNotAllowed and lets
// UploadPart create an upload nobody started; S3 itself aborts, lists parts, and answers
// NoSuchUpload (404) for an upload id it does not have, or that belongs to another key
// (S3 binds an upload id to its key: a client that sends the wrong key must see it fail here). Adds that much, over s3rver's own
// store and behind its authentication, so that the tests can see an upload aborted.
// ListMultipartUploads: answered in the bucket LISTING_BUCKET only, from the uploads' own files
// (Initiated is the mtime of the upload's "key" file, which a test may age). In the bucket
// "deployctl" it stays unimplemented (501), as on the stores deployctl must clean without it:
// one server, both kinds of store.
// Pages of 100 uploads, not S3's 1000: a server may answer fewer than max-uploads (IsTruncated
// says more follow), and the tests see several pages without making thousands of uploads.
const LISTING_BUCKET = 'deployctl-uploads';
const LISTING_PAGE = 100;
function addMultipartUploadCalls() {
    const crypto = require('crypto');
    const lib = path.join(modules, 's3rver', 'lib');
    const router = require(path.join(lib, 'routes'));
    const S3Error = require(path.join(lib, 'models', 'error'));
    router.use('/:bucket/:key+', async (ctx, next) => {
        const id = ctx.query.uploadId;
        if (id === undefined) return next();
        const dir = /^[0-9a-f]+$/.test(id)
            ? path.join(ctx.store.getResourcePath(ctx.params.bucket, undefined, 'uploads'), id)
            : null;
        const keyFile = dir === null ? null : path.join(dir, 'key');
        const owner = keyFile !== null && fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8') : null;
        if (owner !== ctx.params.key)
            throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: id });
        if (ctx.method === 'DELETE') {
            fs.rmSync(dir, { recursive: true, force: true });
            ctx.status = 204;
            return undefined;
        }
        if (ctx.method !== 'GET') return next();
        const parts = fs.readdirSync(dir).filter((n) => /^[0-9]+$/.test(n)).sort((a, b) => a - b);
        ctx.body = {
            ListPartsResult: {
                Bucket: ctx.params.bucket,
                Key: ctx.params.key,
                UploadId: id,
                IsTruncated: false,
                Part: parts.map((n) => {
                    const data = fs.readFileSync(path.join(dir, n));
                    const md5 = crypto.createHash('md5').update(data).digest('hex');
                    return { PartNumber: Number(n), ETag: `"${md5}"`, Size: data.length };
                }),
            },
        };
        return undefined;
    });
    // Before the object routes (whose answer to these is 405), after authentication.
    placeBefore(router, '/:bucket/:key+');
    router.use('/:bucket', async (ctx, next) => {
        if (ctx.method !== 'GET' || !('uploads' in ctx.query) || ctx.params.bucket !== LISTING_BUCKET)
            return next();
        ctx.body = { ListMultipartUploadsResult: listUploads(ctx) };
        return undefined;
    });
    placeBefore(router, '/:bucket'); // before the bucket routes (whose answer is 501)
}

// Moves the layer added last in front of the first layer of `route` that answers a method.
function placeBefore(router, route) {
    const layer = router.stack.pop();
    const at = router.stack.findIndex((l) => l.path === route && l.methods.length > 0);
    if (at < 0) throw new Error(`s3rver routes changed: cannot place the multipart shim before ${route}`);
    router.stack.splice(at, 0, layer);
}

// One page of ListMultipartUploads: uploads sorted by key then upload id, from the markers on.
function listUploads(ctx) {
    const q = ctx.query;
    const prefix = q.prefix || '';
    const keyMarker = q['key-marker'] || '';
    const idMarker = q['upload-id-marker'] || '';
    const max = Math.min(Number(q['max-uploads'] || 1000), LISTING_PAGE);
    const root = ctx.store.getResourcePath(ctx.params.bucket, undefined, 'uploads');
    const ids = fs.existsSync(root) ? fs.readdirSync(root) : [];
    const uploads = ids
        .map((id) => {
            const keyFile = path.join(root, id, 'key');
            if (!fs.existsSync(keyFile)) return null;
            return { key: fs.readFileSync(keyFile, 'utf8'), id, initiated: fs.statSync(keyFile).mtime };
        })
        .filter((u) => u !== null && u.key.startsWith(prefix))
        .filter((u) => u.key > keyMarker || (u.key === keyMarker && idMarker !== '' && u.id > idMarker))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const page = uploads.slice(0, max);
    const truncated = uploads.length > max;
    const last = page[page.length - 1];
    return {
        Bucket: ctx.params.bucket,
        Prefix: prefix,
        KeyMarker: keyMarker,
        UploadIdMarker: idMarker,
        MaxUploads: max,
        IsTruncated: truncated,
        ...(truncated ? { NextKeyMarker: last.key, NextUploadIdMarker: last.id } : {}),
        Upload: page.map((u) => ({
            Key: u.key,
            UploadId: u.id,
            Initiated: u.initiated.toISOString(),
            StorageClass: 'STANDARD',
        })),
    };
}

const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: dataDir,
    silent: true,
    configureBuckets: [{ name: 'deployctl' }, { name: LISTING_BUCKET }],
});
server.run().then(
    (addr) => {
        fs.writeFileSync(portFile + '.tmp', String(addr.port));
        fs.renameSync(portFile + '.tmp', portFile);
    },
    (err) => {
        console.error('s3rver failed to start:', err);
        process.exit(1);
    },
);
// Bounded: a fixture whose cleanup never ran does not outlive the test run by long.
setTimeout(() => process.exit(0), 4 * 3600 * 1000).unref();
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
