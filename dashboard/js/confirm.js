/**
 * The confirmation dialog for disconnects and bans: says what will happen, asks
 * for the reason the user will see (and, for a ban, how long), and runs the
 * action only on Confirm.
 */
import { DEFAULT_DURATION, durationSeconds } from './bans.js';
import { setText } from './dom.js';

export class ConfirmDialog {
  /** @param {HTMLDialogElement} dialog with [data-part] title/detail/error and the testid'd input and buttons */
  constructor(dialog) {
    this.dialog = dialog;
    this.form = dialog.querySelector('form');
    this.title = dialog.querySelector('[data-part="title"]');
    this.detail = dialog.querySelector('[data-part="detail"]');
    this.error = dialog.querySelector('[data-part="error"]');
    this.reason = dialog.querySelector('[data-testid="reason-input"]');
    this.confirm = dialog.querySelector('[data-testid="confirm"]');
    this.cancel = dialog.querySelector('[data-testid="cancel"]');
    this.durationField = dialog.querySelector('[data-part="duration-field"]');
    this.duration = dialog.querySelector('[data-testid="duration-input"]');
    this.withDuration = false;
    this.action = null;
    this.reason.addEventListener('input', () => this._sync());
    this.cancel.addEventListener('click', () => this.close());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this._run();
    });
  }

  /**
   * Opens the dialog. `action(reason, seconds)` is awaited on Confirm (seconds:
   * the chosen duration when `withDuration`, null meaning until lifted); when
   * it throws, the dialog stays open and shows the error's message.
   */
  open({ title, detail, confirmLabel, action, withDuration = false }) {
    this.action = action;
    this.withDuration = withDuration;
    if (this.durationField) this.durationField.hidden = !withDuration;
    if (this.duration) this.duration.value = DEFAULT_DURATION;
    setText(this.title, title);
    setText(this.detail, detail);
    setText(this.confirm, confirmLabel);
    this.error.hidden = true;
    this.reason.value = '';
    this._busy(false);
    if (!this.dialog.open) this.dialog.showModal();
    this.reason.focus();
  }

  close() {
    this.action = null;
    if (this.dialog.open) this.dialog.close();
  }

  _sync() {
    this.confirm.disabled = this.reason.value.trim() === '' || this.form.dataset.busy === 'true';
  }

  _busy(busy) {
    this.form.dataset.busy = String(busy);
    this.reason.disabled = busy;
    this._sync();
  }

  async _run() {
    const reason = this.reason.value.trim();
    if (!reason || !this.action) return;
    this._busy(true);
    try {
      const seconds = this.withDuration && this.duration ? durationSeconds(this.duration.value) : undefined;
      await this.action(reason, seconds);
      this.close();
    } catch (err) {
      setText(this.error, err && err.message ? err.message : 'The request failed.');
      this.error.hidden = false;
    } finally {
      this._busy(false);
    }
  }
}
