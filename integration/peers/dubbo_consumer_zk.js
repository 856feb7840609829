'use strict';
// A Dubbo2 consumer (apache-dubbo-js `Dubbo`) that finds its providers in ZooKeeper (/dubbo/<interface>/providers)
// and calls them directly, as an SDK-based app does.
//   node dubbo_consumer_zk.js --zk 127.0.0.1:2181[/chroot] [--interface org.example.DemoService] [--version 1.0.0]
//        [--group G] [--method sayHello] [--args '["world",7]'] [--types java.lang.String,int] [--count 1]
//        [--concurrency 1] [--timeout 5000] [--ready-ms 15000] [--deadline-ms 60000]
// Waits until the registry produced an address list (apache-dubbo-js's ready()), then prints one
// {"event":"result",...} per call and {"event":"summary",...} like dubbo_consumer.js. apache-dubbo-js throws
// on provider URLs without a path segment, so a run also checks the URLs it read are Java-style.
const { parseArgs, withEnv, runLoad, deadline, fatal, exit, dubboArgs, emit } = require('./_common');

const opts = parseArgs(process.argv.slice(2), withEnv({
  zk: '127.0.0.1:2181', interface: 'org.example.DemoService', version: '1.0.0', group: '', method: 'sayHello',
  args: '["world",7]', types: '', count: '1', concurrency: '1', timeout: '5000', readyMs: '15000',
  deadlineMs: '60000',
}));

async function main() {
  deadline(Number(opts.deadlineMs), 'dubbo_consumer_zk');
  const { Dubbo, java, setting } = require('apache-dubbo-js');
  const args = dubboArgs(java, opts.args, opts.types);
  const dubbo = new Dubbo({
    application: { name: 'meshd-it-consumer' }, register: opts.zk, dubboInvokeTimeout: Math.ceil(Number(opts.timeout) / 1000),
    dubboSetting: setting.match(opts.interface, { version: opts.version, group: opts.group || undefined }),
  });
  // proxyService before the registry connects: apache-dubbo-js reads the interfaces list when it does.
  const svc = dubbo.proxyService({ dubboInterface: opts.interface, methods: { [opts.method]: () => args } });
  const readyTimer = setTimeout(() => fatal(new Error(`registry not ready in ${opts.readyMs} ms`)), Number(opts.readyMs));
  await dubbo.ready();
  clearTimeout(readyTimer);
  emit({ event: 'ready' });
  await runLoad({
    count: Number(opts.count), concurrency: Number(opts.concurrency), workers: [svc],
    call: async (s) => {
      const { res, err } = await s[opts.method]();
      if (err) throw err;
      return res;
    },
  });
  exit(0);
}

main().catch(fatal);
