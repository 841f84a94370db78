/**
 * The comm and monitor sections of ibas.conf with their defaults filled in, in the units the code
 * uses. Only a type import of the schema (lib/config/ibas-conf.ts): an ibas worker imports this
 * without loading TypeBox or ajv (it gets its ibas.conf already validated from the manager,
 * ibas/handover.ts).
 */
import type { IbasConf } from './ibas-conf.js';

export interface CommSettings {
  maxFrame: number;
  maxFile: number;
  maxFiles: number;
  /** comm.max_files_bytes */
  maxFilesBytes: number;
  /** comm.header_timeout in ms */
  headerTimeoutMs: number;
  /** comm.request_timeout in ms */
  requestTimeoutMs: number;
  /** comm.keepalive_timeout (old name idle_timeout) in ms */
  keepaliveTimeoutMs: number;
  /** comm.send_timeout in ms */
  sendTimeoutMs: number;
  /** comm.keepalive_max_requests: HTTP requests per keep-alive connection (0: no limit) */
  keepaliveMaxRequests: number;
  backlog: number;
}
export interface MonitorSettings { tickMs: number; adjustMs: number; heartbeatMs: number; stopTimeoutMs: number; maxRestarts: number; restartWindowMs: number; upgradeTimeoutMs: number; appMaxCrashes: number; appCrashWindowMs: number }

/** The comm section with defaults filled in. */
export function commOf(c: IbasConf): CommSettings {
  const maxFrame = c.comm?.max_frame_size ?? 16 * 1024 * 1024;
  return {
    maxFrame,
    maxFile: Math.min(c.comm?.max_file_size ?? maxFrame - 1024, maxFrame - 300),
    maxFiles: c.comm?.max_files ?? 64,
    maxFilesBytes: c.comm?.max_files_bytes ?? 64 * 1024 * 1024,
    headerTimeoutMs: Math.round((c.comm?.header_timeout ?? 5) * 1000),
    requestTimeoutMs: Math.round((c.comm?.request_timeout ?? 30) * 1000),
    keepaliveTimeoutMs: Math.round((c.comm?.keepalive_timeout ?? c.comm?.idle_timeout ?? 60) * 1000),
    sendTimeoutMs: Math.round((c.comm?.send_timeout ?? 10) * 1000),
    keepaliveMaxRequests: c.comm?.keepalive_max_requests ?? 100,
    backlog: c.comm?.listen_backlog ?? 1024,
  };
}

/** The monitor section with defaults filled in. */
export function monitorOf(c: IbasConf): MonitorSettings {
  return {
    tickMs: c.monitor?.tick_ms ?? 100,
    adjustMs: Math.round((c.monitor?.adjust_interval ?? 1) * 1000),
    heartbeatMs: Math.round((c.monitor?.heartbeat_interval ?? 5) * 1000),
    stopTimeoutMs: Math.round((c.monitor?.stop_timeout ?? 30) * 1000),
    maxRestarts: c.monitor?.max_restarts ?? Math.max(5, 2 * c.mpm.max_count),
    restartWindowMs: Math.round((c.monitor?.restart_window ?? 10) * 1000),
    upgradeTimeoutMs: Math.round((c.monitor?.upgrade_timeout ?? 30) * 1000),
    appMaxCrashes: c.monitor?.app_max_crashes ?? 5,
    appCrashWindowMs: Math.round((c.monitor?.app_crash_window ?? 60) * 1000),
  };
}
