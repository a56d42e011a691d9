/**
 * The confirmation dialog for disconnects, bans, mutes and deletions: says what
 * will happen, asks for the reason (and, for a ban or a mute, how long; for a
 * mute, in which room), and runs the action only on Confirm.
 */
import { DEFAULT_DURATION, durationSeconds } from './restrictions.js';
import { el, setText } from './dom.js';
import { validRoom } from './rooms.js';

const REASON_LABEL = 'Reason shown to the user';

export class ConfirmDialog {
  /** @param {HTMLDialogElement} dialog with [data-part] title/detail/error/fields and the testid'd inputs and buttons */
  constructor(dialog) {
    this.dialog = dialog;
    this.form = dialog.querySelector('form');
    this.title = dialog.querySelector('[data-part="title"]');
    this.detail = dialog.querySelector('[data-part="detail"]');
    this.error = dialog.querySelector('[data-part="error"]');
    this.reason = dialog.querySelector('[data-testid="reason-input"]');
    this.reasonLabel = dialog.querySelector('label[for="reason-input"]');
    this.confirm = dialog.querySelector('[data-testid="confirm"]');
    this.cancel = dialog.querySelector('[data-testid="cancel"]');
    this.durationField = dialog.querySelector('[data-part="duration-field"]');
    this.duration = dialog.querySelector('[data-testid="duration-input"]');
    this.roomField = dialog.querySelector('[data-part="room-field"]');
    this.room = dialog.querySelector('[data-testid="room-input"]');
    this.roomChoices = dialog.querySelector('[data-part="room-choices"]');
    this.withDuration = false;
    this.withRoom = false;
    this.action = null;
    this.reason.addEventListener('input', () => this._sync());
    if (this.room) this.room.addEventListener('input', () => this._sync());
    this.cancel.addEventListener('click', () => this.close());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this._run();
    });
  }

  /**
   * Opens the dialog. `action(reason, seconds, room)` is awaited on Confirm
   * (seconds: the chosen duration when `withDuration`, null meaning until
   * lifted; room: the room typed or picked when `rooms` is given, the rooms to
   * suggest); when it throws, the dialog stays open and shows the error's message.
   */
  open({ title, detail, confirmLabel, action, withDuration = false, rooms = null, reasonLabel = REASON_LABEL }) {
    this.action = action;
    this.withDuration = withDuration;
    this.withRoom = rooms !== null;
    if (this.durationField) this.durationField.hidden = !withDuration;
    if (this.duration) this.duration.value = DEFAULT_DURATION;
    if (this.roomField) {
      this.roomField.hidden = !this.withRoom;
      this.room.value = this.withRoom && rooms.length ? rooms[0] : '';
      this.roomChoices.replaceChildren(...(rooms || []).map((r) => el('option', { value: r })));
    }
    setText(this.title, title);
    setText(this.detail, detail);
    setText(this.confirm, confirmLabel);
    if (this.reasonLabel) setText(this.reasonLabel, reasonLabel);
    this.error.hidden = true;
    this.reason.value = '';
    this._busy(false);
    if (!this.dialog.open) this.dialog.showModal();
    (this.withRoom && !this.room.value ? this.room : this.reason).focus();
  }

  close() {
    this.action = null;
    if (this.dialog.open) this.dialog.close();
  }

  _ready() {
    return this.reason.value.trim() !== '' && (!this.withRoom || validRoom(this.room.value.trim()));
  }

  _sync() {
    this.confirm.disabled = !this._ready() || this.form.dataset.busy === 'true';
  }

  _busy(busy) {
    this.form.dataset.busy = String(busy);
    this.reason.disabled = busy;
    if (this.room) this.room.disabled = busy;
    this._sync();
  }

  async _run() {
    const reason = this.reason.value.trim();
    if (!this._ready() || !this.action) return;
    this._busy(true);
    try {
      const seconds = this.withDuration && this.duration ? durationSeconds(this.duration.value) : undefined;
      await this.action(reason, seconds, this.withRoom ? this.room.value.trim() : undefined);
      this.close();
    } catch (err) {
      setText(this.error, err && err.message ? err.message : 'The request failed.');
      this.error.hidden = false;
    } finally {
      this._busy(false);
    }
  }
}
