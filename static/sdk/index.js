/**
 * imserver-client: the browser client of imserver as a package. These are
 * the chat page's own modules (static/js, static/shared), served to the page
 * as they are and published as they are: ES modules, no build step.
 *
 *     import { ChatConnection } from 'imserver-client';
 *
 * React and Vue: 'imserver-client/react' and 'imserver-client/vue'.
 */
export {
  Cause, ChatConnection, CloseCode, DEFAULTS, State, StopReason,
} from '../js/connection.js';
export { OutboxFullError } from '../js/outbox.js';
export { ChatStore, chatStore } from './store.js';
