// Form field helpers: a field's error message (the id its control's `aria-describedby` names)
// and the move of focus to the first invalid field after a refused submit.

export function focusInvalid(): void {
  requestAnimationFrame(() => {
    const el = document.querySelector<HTMLElement>('main [aria-invalid="true"]');
    if (el instanceof HTMLFieldSetElement) el.querySelector<HTMLElement>("input, textarea")?.focus();
    else el?.focus();
  });
}

export function FieldError({ id, text }: { id: string; text: string | null }) {
  return text ? (
    <p class="field-error" id={id}>
      {text}
    </p>
  ) : null;
}
