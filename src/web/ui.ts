// What every page shares: an error panel a visitor can act on (never a blank page), the engine
// started on the page's navigator.gpu, and small DOM helpers.
import { NoAdapterError, init, type Runtime } from '../engine/index.js';

/** A page's state for scripts and tests (window.neuralign): 'loading', 'ready', 'running', 'done' or 'error'. */
export interface PageState {
  state: 'loading' | 'ready' | 'running' | 'done' | 'error';
  error?: string;
  [key: string]: unknown;
}

export const page: PageState = ((window as unknown as { neuralign: PageState }).neuralign = { state: 'loading' });

/** An element by id; a page's HTML and script are edited together, so a missing one is a bug. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
}

/** A new element with text and attributes. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, attrs: Record<string, string> = {}): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

export function setStatus(text: string): void {
  byId('status').textContent = text;
}

/** Shows an error in the page's error panel and marks the page as failed. */
export function showError(title: string, detail: string): void {
  page.state = 'error';
  page.error = `${title}: ${detail}`;
  const panel = byId('error');
  panel.replaceChildren(el('strong', title), el('p', detail));
  panel.hidden = false;
  setStatus('stopped');
}

/** Uncaught errors land in the panel too, so a failure never leaves the page blank. */
export function catchUncaught(): void {
  window.addEventListener('error', (e) => showError('Unexpected error', e.message));
  window.addEventListener('unhandledrejection', (e) => showError('Unexpected error', String((e.reason as Error)?.message ?? e.reason)));
}

/**
 * Opens the engine's device on navigator.gpu; on failure shows what the visitor can do (which
 * browsers have WebGPU, which flag) and returns null. A lost device later shows the same panel.
 */
export async function startEngine(): Promise<Runtime | null> {
  if (!('gpu' in navigator)) {
    showError(
      'This browser has no WebGPU',
      'Use Chrome or Edge 113 or newer, Firefox 141 or newer on Windows, or Safari 26. On Linux, Chrome needs ' +
        'chrome://flags/#enable-unsafe-webgpu (and Vulkan enabled, chrome://flags/#enable-vulkan). ' +
        (window.isSecureContext ? '' : 'WebGPU also needs a secure page: open it from http://localhost or https. '),
    );
    return null;
  }
  let rt: Runtime;
  try {
    rt = await init();
  } catch (e) {
    const err = e as Error;
    showError(err instanceof NoAdapterError ? 'No WebGPU adapter' : 'Could not open a WebGPU device', err.message);
    return null;
  }
  rt.device.lost.then((info) => {
    if (info.reason === 'destroyed') return;
    showError('The GPU device was lost', `${info.message || info.reason}. A driver reset or a GPU timeout ends the device; reload the page to start again (smaller sizes finish sooner).`);
  });
  return rt;
}
