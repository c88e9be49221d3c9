/**
 * The `tcpmq-gateway` command: settings from flags, environment and file;
 * SIGTERM and SIGINT stop gracefully (persist saved, MQTT state offline, exit
 * 0); SIGHUP re-reads the config file and applies it live, as a deploy does.
 * A bad setting is one line naming it and exit code 2, never a stack trace.
 */

import { describe } from '../events/safe-emitter';
import { SettingError } from '../settings/schema';
import { VERSION } from '../settings/version';
import { Gateway } from './gateway';
import { consoleLog } from './log';
import { helpText, parseArgs, resolveOptions, type GatewayOptions } from './options';

/** Exit code of a bad setting (as a shell's usage error). */
const USAGE = 2;
/** A stop that takes longer than this exits anyway. */
const STOP_WITHIN_MS = 2500;

export function main(argv: readonly string[]): void {
  let command;
  let options: GatewayOptions;
  try {
    command = parseArgs(argv);
    if (command.help) {
      process.stdout.write(`${helpText()}\n`);
      return;
    }
    options = resolveOptions(command, process.env);
  } catch (err) {
    process.stderr.write(`tcpmq-gateway: ${describe(err)}\n`);
    process.exitCode = err instanceof SettingError ? USAGE : 1;
    return;
  }
  const log = consoleLog(options.logLevel);
  const cli = command;
  let gateway: Gateway;
  try {
    gateway = new Gateway(options, log);
  } catch (err) {
    // A TLS file that cannot be read, say.
    process.stderr.write(`tcpmq-gateway: ${describe(err)}\n`);
    process.exitCode = USAGE;
    return;
  }
  log.info(`tcpmq-gateway ${VERSION} "${gateway.name}"`);
  // Nothing a board or the network does may end the service: report it and go on.
  process.on('uncaughtException', (err) => log.error(`internal error, carrying on: ${err.stack ?? describe(err)}`));
  gateway.start().catch((err: unknown) => log.error(describe(err)));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    setTimeout(() => process.exit(0), STOP_WITHIN_MS).unref();
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error(describe(err));
        process.exit(0);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const next = resolveOptions(cli, process.env);
      log.level = next.logLevel;
      gateway.apply(next);
    } catch (err) {
      log.error(`SIGHUP: settings not applied: ${describe(err)}`);
    }
  });
}
