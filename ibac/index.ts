/**
 * ibac, the IBP-TS client library (the package's main export). docs/ibac.md is the guide.
 *
 *   import { createEnvironment } from 'ibp-ts';
 *   const env = createEnvironment({ config: 'ibma.conf' });       // the client node's agent config
 *   const conn = await env.connect('ECIF', 'T0001');               // long connection
 *   const rsp = await conn.sendRequestAndReceiveResponse('T0001', 'hello');
 *   conn.disconnect();
 *   await env.requester('ECIF', 'T0001', 'hello');                  // short connection
 *   env.destroy();
 *
 * Failures are typed (ibac/errors.ts): SAFE (the app did not run), SUSPICIOUS (it may have run:
 * verify, reverse or escalate), ANSWERED (the server reported the failure).
 */
export { IbacEnv, createEnvironment, requester, type EnvOptions } from './env.js';
export { IbacConnection, type ConnectOptions, type ControlAnswer, type DecisionOptions, type IbacResponse, type SendOptions } from './connect.js';
export { IbacMulti, twoPhaseCommit, describeResults, type MultiRequest, type MultiResult, type TwoPhaseResult } from './multi.js';
export {
  IbacError, UsageError, NotSupportedError, ProtectionError, NoHostError, ConnectError, SafeError, SuspiciousError, ServerError,
  PHASE, describeFailure, type Phase, type BreakReason, type FailureContext, type ServerAnswer,
} from './errors.js';
export { createTempFile, MAX_FILES, type RequestFile, type ResponseFile, type TempFile } from './files.js';
export { Balancer, LOAD_SCALE, loadValue, type HostChoice, type HostState } from './balance.js';
export { STEP, type Step } from './request.js';
export { recoverCoordinator, driveParticipant, RETRY_SCHEDULE_MS, type RecoveryReport, type RecoveredTx, type DriveResult } from './recovery.js';
export { CoordinatorLog, readLog, foldRecords, decodeRecords, type CoordTx, type Participant, type Decision } from './coordinator-log.js';
export { newGtrid, checkGtrid } from '../lib/gtrid.js';
export { COMM_STATUS, isSuspicious, type CommStatus } from '../lib/protocol/comm-status.js';
export { TX_FLAG, type Load } from '../lib/protocol/codec.js';
export { IbpError, isIbpError, type ErrorCode } from '../lib/errors.js';
