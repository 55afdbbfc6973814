<?php
/**
 * Plugin Name:       kiln
 * Plugin URI:        https://github.com/kiln-static/kiln/tree/main/integrations/wordpress
 * Description:       Keeps the static copy of this site that kiln bakes for nginx fresh: every page says what it shows (Surrogate-Key), and every change tells kiln which pages to bake again.
 * Version:           0.1.0
 * Requires at least: 6.0
 * Requires PHP:      7.4
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 *
 * One file, no build step: a normal plugin (wp-content/plugins/kiln/kiln.php)
 * or a must-use plugin (copy kiln.php into wp-content/mu-plugins/).
 *
 * Two halves:
 *
 * - **What a page shows.** While WordPress renders a page, every post,
 *   term, comment list, author, menu and widget area it reads is noted, and
 *   the page is sent with `Surrogate-Key: post:12 term:3 comments:12 …`.
 *   kiln stores those keys with the baked file.
 * - **What changed.** Saves, status changes, comments, term edits, menus,
 *   widgets and site-wide settings name the keys (and URLs) they affect;
 *   once per request, at shutdown, the list goes to kiln's daemon
 *   (`POST /v1/regen`), or into kiln's spool directory when the daemon
 *   cannot take it, so nothing is lost while kiln is stopped.
 *
 * Settings: Settings → kiln, or constants in wp-config.php, which win:
 * KILN_URL (default http://127.0.0.1:7878), KILN_TOKEN, KILN_SPOOL.
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The keys the current page shows, and the changes this request made.
 */
final class Kiln {
	/** @var array<string,true> Surrogate keys of the page being rendered. */
	private static $keys = array();
	/** @var array<string,true> Targets to send at shutdown. */
	private static $targets = array();
	/** @var array<int,string> Permalinks of posts before this request changed them. */
	private static $old_urls = array();
	/** @var array<int,true> Posts whose public state changed; their current URL is sent at shutdown. */
	private static $changed_posts = array();
	/** @var string|null If-None-Match kiln sent, kept from WordPress's own feed validators. */
	private static $if_none_match = null;

	/** Most keys one page names; past it, the page is tagged by list instead. */
	const MAX_KEYS = 400;

	public static function boot() {
		self::take_validators();
		// What a page shows.
		add_filter( 'the_posts', array( __CLASS__, 'on_the_posts' ), 10, 2 );
		add_filter( 'get_pages', array( __CLASS__, 'on_get_pages' ), 10, 2 );
		add_filter( 'get_the_terms', array( __CLASS__, 'on_get_the_terms' ), 10, 3 );
		add_filter( 'get_terms', array( __CLASS__, 'on_get_terms' ), 10, 2 );
		add_filter( 'the_comments', array( __CLASS__, 'on_the_comments' ), 10, 2 );
		add_filter( 'get_comments_number', array( __CLASS__, 'on_comments_number' ), 10, 2 );
		add_filter( 'comment_feed_where', array( __CLASS__, 'on_comment_feed' ), 10, 2 );
		add_filter( 'wp_get_nav_menu_items', array( __CLASS__, 'on_menu_items' ), 10, 2 );
		add_filter( 'previous_post_link', array( __CLASS__, 'on_adjacent_link' ), 10, 4 );
		add_filter( 'next_post_link', array( __CLASS__, 'on_adjacent_link' ), 10, 4 );
		add_filter( 'the_author', array( __CLASS__, 'on_the_author' ) );
		add_filter( 'author_link', array( __CLASS__, 'on_author_link' ), 10, 2 );
		add_action( 'dynamic_sidebar_before', array( __CLASS__, 'on_sidebar' ) );
		add_action( 'template_redirect', array( __CLASS__, 'start_buffer' ), -1000000 );

		// What changed.
		add_action( 'pre_post_update', array( __CLASS__, 'remember_url' ) );
		add_action( 'wp_trash_post', array( __CLASS__, 'remember_url' ) );
		add_action( 'before_delete_post', array( __CLASS__, 'remember_url' ) );
		add_action( 'transition_post_status', array( __CLASS__, 'on_post_status' ), 10, 3 );
		add_action( 'post_updated', array( __CLASS__, 'on_post_updated' ), 10, 3 );
		add_action( 'set_object_terms', array( __CLASS__, 'on_object_terms' ), 10, 6 );
		add_action( 'transition_comment_status', array( __CLASS__, 'on_comment_status' ), 10, 3 );
		add_action( 'wp_insert_comment', array( __CLASS__, 'on_new_comment' ), 10, 2 );
		add_action( 'edit_comment', array( __CLASS__, 'on_comment_edit' ) );
		add_action( 'delete_comment', array( __CLASS__, 'on_comment_edit' ) );
		add_action( 'created_term', array( __CLASS__, 'on_term_change' ), 10, 3 );
		add_action( 'edited_term', array( __CLASS__, 'on_term_change' ), 10, 3 );
		add_action( 'pre_delete_term', array( __CLASS__, 'on_term_delete' ), 10, 2 );
		add_action( 'wp_update_nav_menu', array( __CLASS__, 'on_menu' ) );
		add_action( 'wp_delete_nav_menu', array( __CLASS__, 'on_menu' ) );
		add_action( 'wp_update_nav_menu_item', array( __CLASS__, 'on_menu' ) );
		add_action( 'profile_update', array( __CLASS__, 'on_author' ) );
		add_action( 'updated_option', array( __CLASS__, 'on_option' ), 10, 1 );
		add_action( 'added_option', array( __CLASS__, 'on_option' ), 10, 1 );
		foreach ( array( 'switch_theme', 'customize_save_after', 'upgrader_process_complete', 'activated_plugin', 'deactivated_plugin' ) as $hook ) {
			add_action( $hook, array( __CLASS__, 'on_site_wide' ) );
		}
		add_action( 'shutdown', array( __CLASS__, 'send' ), 1000000 );

		if ( is_admin() ) {
			add_action( 'admin_menu', array( __CLASS__, 'admin_menu' ) );
			add_action( 'admin_init', array( __CLASS__, 'register_settings' ) );
			add_action( 'wp_dashboard_setup', array( __CLASS__, 'dashboard' ) );
		}
		add_action( 'admin_bar_menu', array( __CLASS__, 'admin_bar' ), 100 );
		add_action( 'admin_post_kiln_regen', array( __CLASS__, 'regen_from_admin_bar' ) );
	}

	// ---- settings -------------------------------------------------------

	/** A setting: its wp-config constant, else its option, else the default. */
	public static function setting( $name ) {
		$constant = 'KILN_' . strtoupper( $name );
		if ( defined( $constant ) ) {
			return (string) constant( $constant );
		}
		$options = get_option( 'kiln_settings', array() );
		if ( is_array( $options ) && isset( $options[ $name ] ) && '' !== $options[ $name ] ) {
			return (string) $options[ $name ];
		}
		return 'url' === $name ? 'http://127.0.0.1:7878' : '';
	}

	// ---- what a page shows ----------------------------------------------

	private static function key( $key ) {
		if ( count( self::$keys ) < self::MAX_KEYS ) {
			self::$keys[ $key ] = true;
		}
	}

	/** A post's keys; the list key of its type when the query lists posts. */
	public static function on_the_posts( $posts, $query ) {
		if ( ! is_array( $posts ) ) {
			return $posts;
		}
		foreach ( $posts as $post ) {
			if ( $post instanceof WP_Post ) {
				self::key( 'post:' . $post->ID );
			}
		}
		if ( $query instanceof WP_Query && ! $query->is_singular() ) {
			// Which posts a list shows changes with every publish, so a list
			// names its post types, whatever it shows now (even nothing).
			$types = (array) ( $query->get( 'post_type' ) ? $query->get( 'post_type' ) : 'post' );
			foreach ( $types as $type ) {
				self::key( 'list:' . $type );
			}
		}
		return $posts;
	}

	public static function on_get_pages( $pages, $args ) {
		foreach ( (array) $pages as $page ) {
			if ( $page instanceof WP_Post ) {
				self::key( 'post:' . $page->ID );
			}
		}
		self::key( 'list:' . ( isset( $args['post_type'] ) ? $args['post_type'] : 'page' ) );
		return $pages;
	}

	public static function on_get_the_terms( $terms, $post_id, $taxonomy ) {
		if ( is_array( $terms ) ) {
			foreach ( $terms as $term ) {
				self::key( 'term:' . $term->term_id );
			}
		}
		return $terms;
	}

	/** A term list (categories widget, tag cloud) changes when any term of the taxonomy does. */
	public static function on_get_terms( $terms, $taxonomies ) {
		if ( is_admin() ) {
			return $terms;
		}
		foreach ( (array) $taxonomies as $taxonomy ) {
			self::key( 'terms:' . $taxonomy );
		}
		if ( is_array( $terms ) ) {
			foreach ( $terms as $term ) {
				if ( $term instanceof WP_Term ) {
					self::key( 'term:' . $term->term_id );
				}
			}
		}
		return $terms;
	}

	/** A post's comments, or the site's recent comments (a widget, a feed). */
	public static function on_the_comments( $comments, $query ) {
		$post_id = isset( $query->query_vars['post_id'] ) ? (int) $query->query_vars['post_id'] : 0;
		self::key( $post_id ? 'comments:' . $post_id : 'comments' );
		return $comments;
	}

	/** Comment feeds read comments with their own query, not WP_Comment_Query. */
	public static function on_comment_feed( $where, $query ) {
		$singular = $query instanceof WP_Query && $query->is_singular && ! empty( $query->posts );
		self::key( $singular ? 'comments:' . $query->posts[0]->ID : 'comments' );
		return $where;
	}

	public static function on_comments_number( $count, $post_id ) {
		self::key( 'comments:' . (int) $post_id );
		return $count;
	}

	public static function on_menu_items( $items, $menu ) {
		if ( $menu instanceof WP_Term ) {
			self::key( 'menu:' . $menu->term_id );
		}
		foreach ( (array) $items as $item ) {
			if ( isset( $item->object_id, $item->type ) && 'post_type' === $item->type ) {
				self::key( 'post:' . (int) $item->object_id );
			} elseif ( isset( $item->object_id, $item->type ) && 'taxonomy' === $item->type ) {
				self::key( 'term:' . (int) $item->object_id );
			}
		}
		return $items;
	}

	/** A "previous/next post" link shows that post's title. */
	public static function on_adjacent_link( $output, $format, $link, $post ) {
		if ( $post instanceof WP_Post ) {
			self::key( 'post:' . $post->ID );
		}
		return $output;
	}

	public static function on_the_author( $name ) {
		global $authordata;
		if ( isset( $authordata->ID ) ) {
			self::key( 'author:' . $authordata->ID );
		}
		return $name;
	}

	public static function on_author_link( $link, $author_id ) {
		self::key( 'author:' . (int) $author_id );
		return $link;
	}

	public static function on_sidebar() {
		self::key( 'widgets' );
	}

	/** Holds the page until it is rendered, so its keys can go in a header. */
	public static function start_buffer() {
		if ( is_admin() || ! in_array( $_SERVER['REQUEST_METHOD'] ?? 'GET', array( 'GET', 'HEAD' ), true ) ) {
			return;
		}
		$queried = get_queried_object();
		if ( $queried instanceof WP_Term ) {
			self::key( 'term:' . $queried->term_id );
		} elseif ( $queried instanceof WP_User ) {
			self::key( 'author:' . $queried->ID );
		}
		ob_start( array( __CLASS__, 'finish_page' ) );
	}

	/**
	 * The rendered page: its keys, and a validator over what it is (the body
	 * and its keys), so a conditional request from kiln gets a 304 only when
	 * nothing changed.
	 */
	public static function finish_page( $body, $phase ) {
		if ( headers_sent() || ! ( $phase & PHP_OUTPUT_HANDLER_FINAL ) ) {
			return $body;
		}
		$keys = implode( ' ', array_keys( self::$keys ) );
		if ( '' !== $keys ) {
			header( 'Surrogate-Key: ' . $keys );
		}
		if ( 200 === http_response_code() ) {
			$etag = '"kiln-' . md5( $keys . "\n" . $body ) . '"';
			header( 'ETag: ' . $etag );
			header_remove( 'Last-Modified' );
			if ( null !== self::$if_none_match && in_array( $etag, array_map( 'trim', explode( ',', self::$if_none_match ) ), true ) ) {
				// The whole status line: WordPress set one ("200 OK"), which
				// http_response_code() alone would leave in place under FPM.
				$protocol = isset( $_SERVER['SERVER_PROTOCOL'] ) ? $_SERVER['SERVER_PROTOCOL'] : 'HTTP/1.1';
				header( $protocol . ' 304 Not Modified', true, 304 );
				return '';
			}
		}
		return $body;
	}

	/**
	 * WordPress answers a feed's conditional request from the newest post's
	 * date alone, so a renamed category or an edited comment would get a 304
	 * and stay stale. This plugin answers conditional requests itself, from
	 * the page it rendered.
	 */
	private static function take_validators() {
		if ( isset( $_SERVER['HTTP_IF_NONE_MATCH'] ) ) {
			self::$if_none_match = (string) $_SERVER['HTTP_IF_NONE_MATCH'];
		}
		unset( $_SERVER['HTTP_IF_NONE_MATCH'], $_SERVER['HTTP_IF_MODIFIED_SINCE'] );
	}

	// ---- what changed ---------------------------------------------------

	private static function target( $target ) {
		self::$targets[ $target ] = true;
	}

	private static function is_public( $post ) {
		$post = get_post( $post );
		return $post && is_post_type_viewable( $post->post_type ) && 'publish' === $post->post_status;
	}

	/** Its permalink while still public: the page that must change or go. */
	public static function remember_url( $post_id ) {
		if ( self::is_public( $post_id ) && ! isset( self::$old_urls[ $post_id ] ) ) {
			self::$old_urls[ $post_id ] = get_permalink( $post_id );
		}
	}

	public static function on_post_status( $new, $old, $post ) {
		if ( ! is_post_type_viewable( $post->post_type ) || ( 'publish' !== $new && 'publish' !== $old ) ) {
			return;
		}
		self::target( 'tag:post:' . $post->ID );
		self::$changed_posts[ $post->ID ] = true;
		if ( $new !== $old ) {
			// In or out of every list of its type, its terms' archives and
			// counts, its author's archive, its neighbours' links.
			self::target( 'tag:list:' . $post->post_type );
			foreach ( get_object_taxonomies( $post->post_type ) as $taxonomy ) {
				self::target( 'tag:terms:' . $taxonomy );
				foreach ( (array) wp_get_object_terms( $post->ID, $taxonomy, array( 'fields' => 'ids' ) ) as $term_id ) {
					self::target( 'tag:term:' . $term_id );
				}
			}
			self::target( 'tag:author:' . $post->post_author );
			if ( 'publish' === $new ) {
				self::neighbours( $post );
			}
		}
	}

	/** The posts before and after a newly public one: their links now name it. */
	private static function neighbours( $post ) {
		if ( is_post_type_hierarchical( $post->post_type ) ) {
			return;
		}
		$previous = $GLOBALS['post'] ?? null;
		$GLOBALS['post'] = $post;
		foreach ( array( true, false ) as $before ) {
			$adjacent = get_adjacent_post( false, '', $before );
			if ( $adjacent instanceof WP_Post ) {
				self::target( get_permalink( $adjacent ) );
			}
		}
		$GLOBALS['post'] = $previous;
	}

	/** A public post edited in place; a changed date, order or parent reorders lists. */
	public static function on_post_updated( $post_id, $after, $before ) {
		if ( ! self::is_public( $after ) ) {
			return;
		}
		self::target( 'tag:post:' . $post_id );
		self::$changed_posts[ $post_id ] = true;
		foreach ( array( 'post_date', 'menu_order', 'post_parent', 'post_author', 'post_name' ) as $field ) {
			if ( $before->$field !== $after->$field ) {
				self::target( 'tag:list:' . $after->post_type );
				self::target( 'tag:author:' . $before->post_author );
				self::target( 'tag:author:' . $after->post_author );
				break;
			}
		}
	}

	/** A public post moved between categories or tags: both archives change. */
	public static function on_object_terms( $object_id, $terms, $tt_ids, $taxonomy, $append, $old_tt_ids ) {
		if ( ! self::is_public( $object_id ) ) {
			return;
		}
		$changed = array_merge( array_diff( $tt_ids, $old_tt_ids ), array_diff( $old_tt_ids, $tt_ids ) );
		if ( ! $changed ) {
			return;
		}
		self::target( 'tag:post:' . $object_id );
		self::target( 'tag:terms:' . $taxonomy );
		foreach ( $changed as $tt_id ) {
			$term = get_term_by( 'term_taxonomy_id', (int) $tt_id, $taxonomy );
			if ( $term ) {
				self::target( 'tag:term:' . $term->term_id );
			}
		}
	}

	private static function comment_changed( $comment ) {
		$comment = get_comment( $comment );
		if ( $comment && self::is_public( $comment->comment_post_ID ) ) {
			self::target( 'tag:comments:' . $comment->comment_post_ID );
			self::target( 'tag:comments' );
		}
	}

	/** Only what visitors see: a comment becoming or ceasing to be approved. */
	public static function on_comment_status( $new, $old, $comment ) {
		if ( 'approved' === $new || 'approved' === $old ) {
			self::comment_changed( $comment );
		}
	}

	public static function on_new_comment( $id, $comment ) {
		if ( '1' === (string) $comment->comment_approved ) {
			self::comment_changed( $comment );
		}
	}

	public static function on_comment_edit( $id ) {
		$comment = get_comment( $id );
		if ( $comment && '1' === (string) $comment->comment_approved ) {
			self::comment_changed( $comment );
		}
	}

	public static function on_term_change( $term_id, $tt_id, $taxonomy ) {
		if ( ! is_taxonomy_viewable( $taxonomy ) ) {
			return;
		}
		self::target( 'tag:term:' . $term_id );
		self::target( 'tag:terms:' . $taxonomy );
		$link = get_term_link( (int) $term_id, $taxonomy );
		if ( is_string( $link ) ) {
			self::target( $link );
		}
	}

	/** A deleted term's archive goes (its URL answers 404 after). */
	public static function on_term_delete( $term_id, $taxonomy ) {
		if ( ! is_taxonomy_viewable( $taxonomy ) ) {
			return;
		}
		$link = get_term_link( (int) $term_id, $taxonomy );
		if ( is_string( $link ) ) {
			self::target( $link );
		}
		self::target( 'tag:term:' . $term_id );
		self::target( 'tag:terms:' . $taxonomy );
	}

	public static function on_menu( $menu_id ) {
		self::target( 'tag:menu:' . (int) $menu_id );
	}

	public static function on_author( $user_id ) {
		self::target( 'tag:author:' . (int) $user_id );
	}

	/** Options every page shows (title, formats, permalinks, front page) change everything. */
	public static function on_option( $option ) {
		static $site_wide = array(
			'blogname', 'blogdescription', 'permalink_structure', 'category_base', 'tag_base',
			'posts_per_page', 'posts_per_rss', 'rss_use_excerpt', 'show_on_front', 'page_on_front',
			'page_for_posts', 'date_format', 'time_format', 'start_of_week', 'timezone_string',
			'gmt_offset', 'site_icon', 'blog_public', 'default_comment_status', 'comment_order',
			'comments_per_page', 'page_comments', 'thread_comments', 'show_avatars', 'home', 'siteurl',
			'WPLANG', 'stylesheet', 'template',
		);
		if ( 'sidebars_widgets' === $option || 0 === strpos( $option, 'widget_' ) ) {
			self::target( 'tag:widgets' );
		} elseif ( 'sticky_posts' === $option ) {
			self::target( 'tag:list:post' );
		} elseif ( in_array( $option, $site_wide, true ) || 0 === strpos( $option, 'theme_mods_' ) ) {
			self::target( 'all' );
		}
	}

	public static function on_site_wide() {
		self::target( 'all' );
	}

	/** Adds targets from elsewhere (a theme or another plugin): `tag:x`, `/path/`, `all`. */
	public static function regen( $targets ) {
		foreach ( (array) $targets as $t ) {
			self::target( (string) $t );
		}
	}

	/** A URL as kiln's target: its path and query on this site. */
	private static function as_target( $target ) {
		if ( 0 !== strpos( $target, 'http://' ) && 0 !== strpos( $target, 'https://' ) ) {
			return $target;
		}
		$parts = wp_parse_url( $target );
		$path  = isset( $parts['path'] ) ? $parts['path'] : '/';
		return isset( $parts['query'] ) ? $path . '?' . $parts['query'] : $path;
	}

	/** The changes of this request, in one request to kiln, or its spool. */
	public static function send() {
		foreach ( array_keys( self::$changed_posts ) as $post_id ) {
			if ( self::is_public( $post_id ) ) {
				self::target( get_permalink( $post_id ) );
			}
		}
		foreach ( self::$old_urls as $url ) {
			self::target( $url );
		}
		self::$changed_posts = array();
		self::$old_urls      = array();
		if ( ! self::$targets ) {
			return;
		}
		$targets       = array_map( array( __CLASS__, 'as_target' ), array_keys( self::$targets ) );
		$targets       = in_array( 'all', $targets, true ) ? array( 'all' ) : array_values( array_unique( $targets ) );
		self::$targets = array();
		if ( self::post( $targets ) ) {
			return;
		}
		$spool = self::setting( 'spool' );
		if ( '' !== $spool && self::spool( $spool, $targets ) ) {
			return;
		}
		error_log( 'kiln: neither the daemon at ' . self::setting( 'url' ) . ' nor a spool directory took ' . count( $targets ) . ' targets: ' . implode( ' ', array_slice( $targets, 0, 5 ) ) );
	}

	/** `POST /v1/regen`; true when kiln accepted the targets. */
	private static function post( $targets ) {
		$url = rtrim( self::setting( 'url' ), '/' );
		if ( '' === $url ) {
			return false;
		}
		$headers = array( 'Content-Type: application/json' );
		$token   = self::setting( 'token' );
		if ( '' !== $token ) {
			$headers[] = 'Authorization: Bearer ' . $token;
		}
		$context = stream_context_create(
			array(
				'http' => array(
					'method'        => 'POST',
					'header'        => implode( "\r\n", $headers ),
					'content'       => wp_json_encode( array( 'targets' => $targets ) ),
					'timeout'       => 3,
					'ignore_errors' => true,
				),
			)
		);
		$answer = @file_get_contents( $url . '/v1/regen', false, $context ); // phpcs:ignore WordPress.WP.AlternativeFunctions
		$status = 0;
		if ( isset( $http_response_header[0] ) && preg_match( '#^HTTP/\S+\s+(\d{3})#', $http_response_header[0], $m ) ) {
			$status = (int) $m[1];
		}
		if ( $status >= 200 && $status < 300 ) {
			return true;
		}
		error_log( 'kiln: the daemon at ' . $url . ' did not take ' . count( $targets ) . ' targets (' . ( $status ? 'HTTP ' . $status . ': ' . substr( (string) $answer, 0, 200 ) : 'no answer' ) . ')' );
		return false;
	}

	/** `kiln enqueue`'s format: a file in tmp/, synced, renamed into new/. */
	private static function spool( $dir, $targets ) {
		$dir = rtrim( $dir, '/' );
		foreach ( array( 'tmp', 'new' ) as $sub ) {
			if ( ! is_dir( "$dir/$sub" ) && ! @mkdir( "$dir/$sub", 0775, true ) && ! is_dir( "$dir/$sub" ) ) {
				return false;
			}
		}
		$name = sprintf( '%d.%d.%s', (int) ( microtime( true ) * 1e6 ), getmypid(), bin2hex( random_bytes( 4 ) ) );
		$tmp  = "$dir/tmp/$name";
		$f    = @fopen( $tmp, 'x' );
		if ( ! $f ) {
			return false;
		}
		$ok = false !== fwrite( $f, implode( "\n", $targets ) . "\n" );
		if ( function_exists( 'fsync' ) ) {
			$ok = $ok && fsync( $f );
		}
		fclose( $f );
		if ( ! $ok || ! rename( $tmp, "$dir/new/$name" ) ) {
			@unlink( $tmp );
			return false;
		}
		return true;
	}

	// ---- admin ----------------------------------------------------------

	public static function admin_menu() {
		add_options_page( 'kiln', 'kiln', 'manage_options', 'kiln', array( __CLASS__, 'settings_page' ) );
	}

	public static function register_settings() {
		register_setting(
			'kiln',
			'kiln_settings',
			array(
				'type'              => 'array',
				'sanitize_callback' => function ( $in ) {
					$out = array();
					foreach ( array( 'url', 'token', 'spool' ) as $k ) {
						$out[ $k ] = isset( $in[ $k ] ) ? trim( sanitize_text_field( $in[ $k ] ) ) : '';
					}
					return $out;
				},
			)
		);
	}

	public static function settings_page() {
		echo '<div class="wrap"><h1>kiln</h1><form method="post" action="options.php">';
		settings_fields( 'kiln' );
		echo '<table class="form-table">';
		$fields = array(
			'url'   => array( 'Daemon URL', 'kiln daemon\'s address (daemon.listen); default http://127.0.0.1:7878' ),
			'token' => array( 'Token', 'The bearer token, when the daemon has one (daemon.token-env)' ),
			'spool' => array( 'Spool directory', 'Where changes wait while the daemon is stopped: kiln\'s queue directory (kiln check prints it); writable by PHP' ),
		);
		$options = get_option( 'kiln_settings', array() );
		foreach ( $fields as $k => list( $label, $help ) ) {
			$constant = 'KILN_' . strtoupper( $k );
			$value    = is_array( $options ) && isset( $options[ $k ] ) ? $options[ $k ] : '';
			printf(
				'<tr><th><label for="kiln_%1$s">%2$s</label></th><td><input class="regular-text" id="kiln_%1$s" name="kiln_settings[%1$s]" value="%3$s"%4$s><p class="description">%5$s%6$s</p></td></tr>',
				esc_attr( $k ),
				esc_html( $label ),
				esc_attr( $value ),
				defined( $constant ) ? ' disabled' : '',
				esc_html( $help ),
				defined( $constant ) ? esc_html( ' (set by ' . $constant . ' in wp-config.php)' ) : ''
			);
		}
		echo '</table>';
		submit_button();
		echo '</form>';
		self::status_box();
		echo '</div>';
	}

	public static function dashboard() {
		if ( current_user_can( 'manage_options' ) ) {
			wp_add_dashboard_widget( 'kiln_status', 'kiln', array( __CLASS__, 'status_box' ) );
		}
	}

	/** The daemon's `/v1/status`: reachable, queue, last errors. */
	public static function status_box() {
		$url     = rtrim( self::setting( 'url' ), '/' );
		$headers = array();
		if ( '' !== self::setting( 'token' ) ) {
			$headers['Authorization'] = 'Bearer ' . self::setting( 'token' );
		}
		$r = wp_remote_get( $url . '/v1/status', array( 'timeout' => 2, 'headers' => $headers ) );
		if ( is_wp_error( $r ) || 200 !== wp_remote_retrieve_response_code( $r ) ) {
			$why = is_wp_error( $r ) ? $r->get_error_message() : 'HTTP ' . wp_remote_retrieve_response_code( $r );
			printf( '<p><strong>kiln\'s daemon is not reachable at %s</strong> (%s). Changes wait in %s until it starts.</p>', esc_html( $url ), esc_html( $why ), esc_html( '' !== self::setting( 'spool' ) ? self::setting( 'spool' ) : 'no spool directory: set one, or they are lost' ) );
			return;
		}
		$s     = json_decode( wp_remote_retrieve_body( $r ), true );
		$pages = isset( $s['pages'] ) && is_array( $s['pages'] ) ? $s['pages'] : array();
		printf(
			'<p>kiln\'s daemon at %s: <strong>%d pages</strong> baked, %d waiting, %d failing.</p>',
			esc_html( $url ),
			(int) ( $pages['ok'] ?? 0 ),
			(int) ( $s['pending_urls'] ?? 0 ) + (int) ( $s['queue_depth'] ?? 0 ),
			(int) ( $pages['failed'] ?? 0 )
		);
		if ( ! empty( $s['problems'] ) && is_array( $s['problems'] ) ) {
			echo '<ul>';
			foreach ( array_slice( $s['problems'], 0, 5 ) as $p ) {
				printf( '<li><code>%s</code> %s: %s</li>', esc_html( $p['url'] ?? '' ), esc_html( $p['status'] ?? '' ), esc_html( $p['error'] ?? '' ) );
			}
			echo '</ul>';
		}
	}

	/** "Bake this page again" on the front end's admin bar. */
	public static function admin_bar( $bar ) {
		if ( is_admin() || ! current_user_can( 'edit_posts' ) ) {
			return;
		}
		$path = wp_parse_url( home_url( add_query_arg( array() ) ), PHP_URL_PATH );
		$bar->add_node(
			array(
				'id'    => 'kiln-regen',
				'title' => 'kiln: bake this page again',
				'href'  => wp_nonce_url( admin_url( 'admin-post.php?action=kiln_regen&path=' . rawurlencode( (string) $path ) ), 'kiln_regen' ),
			)
		);
	}

	public static function regen_from_admin_bar() {
		check_admin_referer( 'kiln_regen' );
		if ( ! current_user_can( 'edit_posts' ) ) {
			wp_die( 'Not allowed.', 403 );
		}
		$path = isset( $_GET['path'] ) ? '/' . ltrim( wp_unslash( (string) $_GET['path'] ), '/' ) : '/';
		self::target( $path );
		wp_safe_redirect( home_url( $path ) );
		exit;
	}
}

Kiln::boot();
