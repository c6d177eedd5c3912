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
