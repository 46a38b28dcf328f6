// A virtualised grid: fixed row height, only the visible rows (plus overscan) in the DOM.
// Keyboard: focus the grid, arrows / Page Up / Page Down / Home / End move the active row,
// Enter activates it. The active row is announced through aria-activedescendant.

import type { ComponentChildren } from "preact";
import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";

export interface Column<T> {
  id: string;
  header: ComponentChildren;
  cell(item: T, index: number): ComponentChildren;
  class?: string;
}

export interface VirtualListProps<T> {
  /** Unique on the page; prefixes row ids. */
  id: string;
  /** The grid's accessible name. */
  label: string;
  items: readonly T[];
  columns: readonly Column<T>[];
  /** CSS `grid-template-columns` shared by the header and every row. */
  template: string;
  getKey(item: T): string;
  /** Row height in px (the header has the same). */
  rowHeight: number;
  /** The grid's height once it has more rows than fit (px). */
  maxHeight?: number;
  /** Rows rendered beyond each edge of the viewport. */
  overscan?: number;
  /** Minimum row width (CSS length) before the grid scrolls sideways. */
  minWidth?: string;
  /** Row click or Enter. */
  onActivate?(item: T, index: number): void;
  /** When given, rows carry aria-selected (true for this key). */
  selectedKey?: string | null;
  rowTestId?: string;
  rowClass?(item: T): string;
}

export function VirtualList<T>(props: VirtualListProps<T>) {
  const { items, rowHeight: rh, columns, getKey } = props;
  const overscan = props.overscan ?? 8;
  const height = Math.min(props.maxHeight ?? 480, (items.length + 1) * rh);
  const viewport = Math.max(rh, height - rh); // minus the sticky header
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [activeKey, setActiveKey] = useState<string | null>(null);
  const anchor = useRef<{ key: string; offset: number } | null>(null);

  const indexByKey = useMemo(() => {
    const map = new Map<string, number>();
    items.forEach((item, index) => map.set(getKey(item), index));
    return map;
  }, [items, getKey]);

  const activeIndex = activeKey === null ? -1 : (indexByKey.get(activeKey) ?? -1);

  const remember = (top: number): void => {
    const first = Math.floor(top / rh);
    const item = items[first];
    anchor.current = item === undefined || top <= 0 ? null : { key: getKey(item), offset: top - first * rh };
  };

  // Keep the rows in view when items are added above them (a live list, newest first).
  useLayoutEffect(() => {
    const el = ref.current;
    const kept = anchor.current;
    if (!el || !kept) return;
    const index = indexByKey.get(kept.key);
    if (index === undefined) return;
    const top = index * rh + kept.offset;
    if (Math.abs(top - el.scrollTop) >= 1) {
      el.scrollTop = top;
      setScrollTop(el.scrollTop);
    }
  }, [indexByKey, rh]);

  const onScroll = (): void => {
    const el = ref.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    remember(el.scrollTop);
  };

  const reveal = (index: number): void => {
    const el = ref.current;
    if (!el) return;
    const top = index * rh;
    let next = el.scrollTop;
    if (top < next) next = top;
    else if (top + rh > next + viewport) next = top + rh - viewport;
    if (next !== el.scrollTop) {
      el.scrollTop = next;
      setScrollTop(el.scrollTop);
      remember(el.scrollTop);
    }
  };

  const firstVisible = Math.min(items.length - 1, Math.floor(scrollTop / rh));

  const onKeyDown = (event: KeyboardEvent): void => {
    const count = items.length;
    if (count === 0) return;
    const page = Math.max(1, Math.floor(viewport / rh) - 1);
    const current = activeIndex >= 0 ? activeIndex : -1;
    let next: number;
    switch (event.key) {
      case "ArrowDown":
        next = current < 0 ? Math.max(0, firstVisible) : current + 1;
        break;
      case "ArrowUp":
        next = current < 0 ? Math.max(0, firstVisible) : current - 1;
        break;
      case "PageDown":
        next = Math.max(0, current) + page;
        break;
      case "PageUp":
        next = Math.max(0, current) - page;
        break;
      case "Home":
        next = 0;
        break;
      case "End":
        next = count - 1;
        break;
      case "Enter": {
        const item = items[current];
        if (item !== undefined) {
          event.preventDefault();
          props.onActivate?.(item, current);
        }
        return;
      }
      default:
        return;
    }
    event.preventDefault();
    next = Math.max(0, Math.min(count - 1, next));
    const item = items[next];
    if (item === undefined) return;
    setActiveKey(getKey(item));
    reveal(next);
  };

  const onFocus = (): void => {
    if (activeIndex < 0 && items.length > 0) {
      const item = items[Math.max(0, firstVisible)];
      if (item !== undefined) setActiveKey(getKey(item));
    }
  };

  const start = Math.max(0, Math.floor(scrollTop / rh) - overscan);
  const end = Math.min(items.length, Math.ceil((scrollTop + viewport) / rh) + overscan);
  const indexes: number[] = [];
  for (let i = start; i < end; i++) indexes.push(i);
  if (activeIndex >= 0 && (activeIndex < start || activeIndex >= end)) indexes.push(activeIndex);

  const rowId = (index: number): string => `${props.id}-r${index}`;
  const widthStyle = props.minWidth ? { minWidth: props.minWidth } : {};

  return (
    <div
      ref={ref}
      id={props.id}
      class="vlist"
      role="grid"
      aria-label={props.label}
      aria-rowcount={items.length + 1}
      aria-colcount={columns.length}
      aria-activedescendant={activeIndex >= 0 ? rowId(activeIndex) : undefined}
      tabIndex={0}
      style={{ height: `${height}px` }}
      onScroll={onScroll}
      onKeyDown={onKeyDown}
      onFocus={onFocus}
    >
      <div role="rowgroup" class="vlist-head" style={widthStyle}>
        <div role="row" aria-rowindex={1} class="vlist-row" style={{ gridTemplateColumns: props.template, height: `${rh}px` }}>
          {columns.map((column, index) => (
            <div role="columnheader" aria-colindex={index + 1} class={`vlist-cell ${column.class ?? ""}`} key={column.id}>
              {column.header}
            </div>
          ))}
        </div>
      </div>
      <div role="rowgroup" class="vlist-body" style={{ height: `${items.length * rh}px`, ...widthStyle }}>
        {indexes.map((index) => {
          const item = items[index] as T;
          const key = getKey(item);
          const classes = ["vlist-row", props.rowClass?.(item) ?? ""];
          if (index === activeIndex) classes.push("active");
          if (props.selectedKey !== undefined && key === props.selectedKey) classes.push("selected");
          return (
            <div
              key={key}
              id={rowId(index)}
              role="row"
              aria-rowindex={index + 2}
              aria-selected={props.selectedKey === undefined ? undefined : key === props.selectedKey}
              class={classes.join(" ")}
              data-testid={props.rowTestId}
              style={{ gridTemplateColumns: props.template, height: `${rh}px`, transform: `translateY(${index * rh}px)` }}
              onClick={() => {
                setActiveKey(key);
                props.onActivate?.(item, index);
              }}
            >
              {columns.map((column, col) => (
                <div role="gridcell" aria-colindex={col + 1} class={`vlist-cell ${column.class ?? ""}`} key={column.id}>
                  {column.cell(item, index)}
                </div>
              ))}
            </div>
          );
        })}
      </div>
    </div>
  );
}
