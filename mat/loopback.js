// mat-harness: keep a Node.js server off the network unless asked.
//
// Loaded before the program with NODE_OPTIONS="--require <this file>", as `python -m trials.experiment run`
// does for NNI's manager (the node process `nnictl create` starts: web UI and REST API, which has no
// authentication). A server that listens without naming a host (NNI 3.0: `app.listen(port)`, every
// interface) listens on $MAT_NNI_BIND instead, 127.0.0.1 when unset; a server that names its host keeps it,
// and so do Unix sockets and inherited handles. TensorBoard, which NNI's manager starts with `--bind_all`,
// gets `--host=<that address>` instead. docs/nni.md, "Security", says what this covers and what it does not.
'use strict';

const net = require('net');
const childProcess = require('child_process');

const host = process.env.MAT_NNI_BIND || '127.0.0.1';

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value));
}

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object') {
    // listen(options[, callback]): a port without a host gets ours; { path }, { handle }, { fd } are left alone
    if (first.host === undefined && first.path === undefined && first.handle === undefined && first.fd === undefined
        && !('_handle' in first)) {
      args[0] = { ...first, host };
    }
  } else if (args.length === 0 || first === undefined || first === null || isPort(first)) {
    // listen([port][, host][, backlog][, callback]): no host string in second place means every interface
    if (args.length === 0) {
      args.push(0);
    }
    if (typeof args[1] !== 'string') {
      args.splice(1, 0, host);
    }
  }
  return listen.apply(this, args);
};

const spawn = childProcess.spawn;
childProcess.spawn = function (command, args, ...rest) {
  if (typeof command === 'string' && command.trim() === 'tensorboard' && Array.isArray(args)) {
    // NNI 3.0 (nniTensorboardManager): ['--bind_all --logdir_spec=...', '--port=...'] under a shell
    args = args.map((a) => (typeof a === 'string' ? a.replace(/(^|\s)--bind_all(?=\s|$)/, `$1--host=${host}`) : a));
  }
  return spawn.call(this, command, args, ...rest);
};
