// Runs s3rver (an S3-compatible server) for the tests: loopback only, a private port chosen by
// the kernel, objects in a temporary directory, an access key of the tests' own, the bucket
// "deployctl" created. Writes the port to PORT_FILE once listening. Never for production.
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
// ListMultipartUploads stays unimplemented (501), as on the stores deployctl must clean without it.
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
    const layer = router.stack.pop();
    const at = router.stack.findIndex((l) => l.path === '/:bucket/:key+' && l.methods.length > 0);
    if (at < 0) throw new Error('s3rver routes changed: cannot place the multipart shim');
    router.stack.splice(at, 0, layer);
}

const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: dataDir,
    silent: true,
    configureBuckets: [{ name: 'deployctl' }],
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
